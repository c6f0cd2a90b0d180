"""What ingest asks Redis before it produces, in one call (lua/admit.lua; the calls of one
process share round trips: round_trips.py):

1. a retried ``client_id`` the bridge has stored already: answer with that message;
2. a name held by a present session (the stream service holds a session's name while it is
   connected to the room, stream/presence.py): another session may not post under it (409);
3. the fixed-window budgets, shared by every ingest process and pod: count this request
   in every one it spends (messages per name, requests, body bytes, typing signals, deletes
   and new rooms per client address), refuse it if one is over its limit (429);
4. an admitted post: its client address (a keyed digest) takes part in the room, which the
   room directory ranks by (chat_common/participants.py).

Each check is optional (a delete spends budgets only, a typing signal checks the name and
its budget), and they run in this order, so a replay is never counted and a refused name is
not counted either. If Redis does not answer (down, timed out, full), the request is refused
(503 redis_unavailable with Retry-After): a check that cannot be made never lets it through.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import RedisError

from chat_common import errors, keys, participants
from chat_common.lua import lua_source
from chat_common.messages import client_id_key, history_key, meta_key, name_hold_key
from ingest import metrics
from ingest.config import Config
from ingest.round_trips import SharedRoundTrips

log = logging.getLogger(__name__)

ADMIT = participants.lua_with_participants("ingest/admit.lua")
ADDRESS_BUDGETS = lua_source("ingest/budgets.lua")  # cluster mode: an address's budgets, on its own slot
STORED, NAME_TAKEN, LIMITED = 1, 2, 3
NEW_ROOM: Literal["new"] = "new"  # a budget's amount: 1 if the room has no state yet, else nothing


def created_key(room: str) -> str:
    # string with the rooms window's TTL: an address was admitted to create this room, so
    # its next posts (before the bridge writes the room's meta hash) do not count it again
    return keys.room_key(room, "created")


class Budget(NamedTuple):
    """One fixed-window counter this request spends: ``scope`` (user, ip, ip_bytes, ...) for
    ``who`` (a name or a client address), ``amount`` of it, at most ``limit`` per window.
    A tuple: a POST makes six, and a frozen dataclass costs several times as much to make."""

    scope: str
    who: str
    amount: int | Literal["new"]
    limit: int
    window_s: int

    def key(self, room: str | None = None) -> str:
        """Spent for ``room``: in its slot in cluster mode (chat_common/keys.py)."""
        return keys.budget_key(self.scope, self.who, room)

    def per_address(self) -> bool:
        """A client address's counter (the ``ip`` scopes) with a plain amount: in cluster mode it is
        spent under the address's own tag; the new-room count needs the room's keys."""
        return self.scope.startswith("ip") and self.amount != NEW_ROOM


@dataclass(frozen=True)
class Verdict:
    replay_id: str | None = None  # the id first stored for the retried client_id
    replay_json: str = ""  # that message as stored, or "" when it left the room's window
    name_taken: bool = False
    limited: tuple[str, int] | None = None  # (scope, seconds to wait)


ADMITTED = Verdict()


DAY_S = 86_400  # the window of the daily budgets per client address

class Budgets:
    """The budgets each kind of request spends, with the limits of the configuration."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def post(self, user: str, address: str, body_bytes: int) -> list[Budget]:
        c, window = self.config, self.config.rate_limit_window_s
        return [
            Budget("user", user, 1, c.rate_limit_user, window),
            Budget("ip", address, 1, c.rate_limit_ip, window),
            Budget("ip_bytes", address, body_bytes, c.rate_limit_ip_bytes, window),
            Budget("ip_rooms", address, NEW_ROOM, c.rate_limit_ip_rooms, c.rate_limit_rooms_window_s),
            # The day's budgets bound what stays in Redis for a day after the short window has
            # let it through: each stored message keeps a client_id key (up to 180 bytes) for a
            # day and 8 bytes of offset index while the log keeps it. At the window's 300 posts
            # per 10 s alone, one address could leave 467 MB of client_id keys in a day.
            Budget("ip_day", address, 1, c.rate_limit_ip_day, DAY_S),
            Budget("ip_bytes_day", address, body_bytes, c.rate_limit_ip_bytes_day, DAY_S),
        ]

    def typing(self, address: str, body_bytes: int) -> list[Budget]:
        c, window = self.config, self.config.rate_limit_window_s
        return [
            Budget("ip_typing", address, 1, c.rate_limit_ip_typing, window),
            Budget("ip_bytes", address, body_bytes, c.rate_limit_ip_bytes, window),
        ]

    def delete(self, address: str) -> list[Budget]:
        """Spent before the message is read back from Kafka: refused deletes count too."""
        c, window = self.config, self.config.rate_limit_window_s
        return [Budget("ip", address, 1, c.rate_limit_ip, window),
                Budget("ip_deletes", address, 1, c.rate_limit_ip_deletes, window)]

    def edit(self, address: str, body_bytes: int) -> list[Budget]:
        """Spent before the message is read back from Kafka: refused edits count too."""
        c, window = self.config, self.config.rate_limit_window_s
        return [Budget("ip", address, 1, c.rate_limit_ip, window),
                Budget("ip_bytes", address, body_bytes, c.rate_limit_ip_bytes, window)]

    def edit_by(self, author: str, address: str, body_bytes: int) -> list[Budget]:
        """An edit stores a new text as a post does: the author's and the day's budgets."""
        c = self.config
        return [Budget("user", author, 1, c.rate_limit_user, c.rate_limit_window_s),
                Budget("ip_day", address, 1, c.rate_limit_ip_day, DAY_S),
                Budget("ip_bytes_day", address, body_bytes, c.rate_limit_ip_bytes_day, DAY_S)]

    def reaction(self, user: str, address: str) -> list[Budget]:
        c, window = self.config, self.config.rate_limit_window_s
        # Each reaction stays in Redis while its message does (its name in the message's
        # reactions): the day's post budget bounds what one address leaves there.
        return [Budget("ip", address, 1, c.rate_limit_ip, window),
                Budget("user_reactions", user, 1, c.rate_limit_user_reactions, window),
                Budget("ip_day", address, 1, c.rate_limit_ip_day, DAY_S)]

    def delete_by(self, author: str) -> list[Budget]:
        return [Budget("user", author, 1, self.config.rate_limit_user, self.config.rate_limit_window_s)]


class Admission:
    """One node: every call of the process goes by its shared round trips (round_trips.py), on
    one connection however many client connections the process serves (1,000 greenlets on the
    gevent worker). Cluster mode: each call goes by the cluster client, which routes it to the
    shard of the room's slot and follows a failover."""

    def __init__(self, redis: Redis, retry_after_s: float) -> None:
        self.retry_after_s = retry_after_s
        self._redis = redis
        self._admit = redis.register_script(ADMIT)
        self._address_budgets = redis.register_script(ADDRESS_BUDGETS)
        self._shared = None if keys.cluster() else SharedRoundTrips(redis.connection_pool)

    def _call(self, script: Script, names: list[str], args: list[str | int]) -> list[int | str]:
        if self._shared is None:
            return script(names, args)  # type: ignore[no-any-return]
        return self._shared.call(script, names, args)

    def check(self, room: str, budgets: Sequence[Budget] = (), client_id: str | None = None,
              name: str | None = None, session: str | None = None, took_part: str = "") -> Verdict:
        """Run the checks asked for: ``client_id`` (a retry?), ``name`` (held by a session
        other than ``session``?) and ``budgets`` (spent); the first that refuses decides.
        If none does, the address digest ``took_part`` takes part in the room.
        ApiError 503 if Redis does not answer."""
        # Cluster mode: an address's budgets under its own tag, in a second call made only if the
        # room's checks admit (so a replay or a refused name is still not counted); one node: one call.
        address = [b for b in budgets if b.per_address()] if keys.cluster() else []
        mine = [b for b in budgets if not b.per_address()] if address else list(budgets)
        unused = keys.placeholder(room)
        names = [client_id_key(room, client_id) if client_id else unused, history_key(room),
                 name_hold_key(room, name) if name is not None else unused, meta_key(room), created_key(room),
                 *participants.keys_of(room),
                 *(budget.key(room) for budget in mine)]
        args: list[str | int] = [int(bool(client_id)), int(name is not None), repr(time.time()), session or "",
                                 took_part, room, participants.WINDOW_S]
        for budget in mine:
            args += [budget.amount, budget.limit, budget.window_s]
        try:
            result = self._call(self._admit, names, args)
            if int(result[0]) == 0 and address:  # fails closed too: a RedisError is a 503
                result = self._call(self._address_budgets, [keys.address_budget_key(b.scope, b.who) for b in address],
                                    [value for b in address for value in (b.amount, b.limit, b.window_s)])
                mine = address
        except RedisError as error:
            if name is not None:
                metrics.NAME_CHECK_ERRORS.inc()
            if budgets:
                metrics.RATE_LIMIT_ERRORS.inc()
            log.warning("request refused: redis unavailable", extra={"error": str(error)})
            raise errors.redis_unavailable(self.retry_after_s) from error
        verdict = int(result[0])
        if verdict == STORED:
            return Verdict(replay_id=str(result[1]), replay_json=str(result[2]))
        if verdict == NAME_TAKEN:
            return Verdict(name_taken=True)
        if verdict == LIMITED:
            budget, wait_s = mine[int(result[1]) - 1], int(result[2])
            return Verdict(limited=(budget.scope, wait_s if wait_s > 0 else budget.window_s))
        return ADMITTED
