"""A page's offsets, from the room's offset index: one Lua call (lua/lookup.lua) that also
checks the client's share and names the next older page's offsets, for the read ahead."""

from dataclasses import dataclass

from redis import Redis

from chat_common.keys import state_key
from chat_common.lua import lua_source
from chat_common.messages import deleted_key, offsets_key, unpack_offsets
from stream import metrics
from stream.scrollback.budget import ClientBudget

LOOKUP_EXAMINED = 1_000  # index entries one lookup looks at, at most, past the deleted ones it skips

LOOKUP_SCRIPT = lua_source("chat_common/offsets.lua", "stream/lookup.lua")


@dataclass
class Lookup:
    """What the index gave a page: see lua/lookup.lua."""

    entries: list[int]  # offsets, increasing
    indexed: int | None
    oldest: int | None
    exhausted: bool
    removed: bool
    ahead: list[int]  # offsets, increasing
    used: int  # the records the client had caused to be read


class IndexLookup:
    def __init__(self, redis: Redis, budget: ClientBudget) -> None:
        self.budget = budget
        self._script = redis.register_script(LOOKUP_SCRIPT)

    def find(self, room: str, partition: int, below: int, count: int, beginning: int, ahead: int,
             client: str | None) -> Lookup:
        """The index's ``count`` newest offsets of the room below ``below`` (and at or above
        ``beginning``, the log's first offset) that are still shown, and the ``ahead`` ones
        below them, in the same call as the client's share; raises ClientLimited past that
        share."""
        reply = self._script(
            keys=[offsets_key(room), state_key(partition), deleted_key(room), self.budget.key(client, room)],
            args=[below, count, partition, beginning, ahead, self.budget.records, LOOKUP_EXAMINED],
        )
        if reply[0] == b"limited":
            metrics.SCROLLBACK_REFUSED.labels("client_limit").inc()
            raise self.budget.limited(reply[1])
        entries, indexed, oldest, exhausted, removed, ahead_entries, used = reply
        return Lookup(
            entries=unpack_offsets(entries),
            indexed=int(indexed) if indexed else None,
            oldest=unpack_offsets(oldest)[0] if oldest else None,
            exhausted=bool(exhausted),
            removed=bool(removed),
            ahead=unpack_offsets(ahead_entries),
            used=int(used),
        )
