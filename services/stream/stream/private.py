"""Private rooms on the stream (chat_common/private.py): members only on every path, and a
removed member's open streams end.

Every route of a room asks ``check`` first: for a private room, anyone but its members gets
the answer a room that does not exist gets (404 room_not_found), on connect, resume,
history (the Redis window and Kafka scrollback alike) and presence; 503 while Redis does not
hold the whole state. The directory never lists private rooms (rooms.py).

Each worker checks its open private streams once per ``WATCH_INTERVAL_S`` (one Redis round
trip for all of them) and closes those whose member was removed, as a hangup does: the
stream ends, and the browser's reconnect gets 404.
"""

import logging
from collections.abc import Callable

import gevent
from flask import g
from redis import Redis
from redis.exceptions import RedisError

from chat_common.errors import ApiError
from chat_common.private import Access, PrivateRooms, is_private, member_id
from chat_common.sessions import session_id
from stream import errors
from stream.hub import Client

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 1.0  # a removed member's streams end within this (and the removal's own write)


def not_found() -> ApiError:
    """The same words as ingest's (ingest/rooms.py): a private room and a missing one look alike."""
    return ApiError(404, "room_not_found", "There is no such room (or it is private and you were not invited).")


class Guard:
    def __init__(self, redis: Redis) -> None:
        self.rooms = PrivateRooms(redis)
        self._watched: dict[Client, str] = {}  # open private streams -> their member
        self._watcher: gevent.Greenlet | None = None

    def check(self, room: str) -> str | None:
        """Raise unless the asker may read ``room``; return their member id for a private
        room (None for a public one)."""
        if not is_private(room):
            return None
        member = member_id(g.get("user"), session_id())
        try:
            access = self.rooms.access(room, member)
        except RedisError:
            raise errors.redis_unavailable() from None
        if access is Access.NOT_READY:
            raise ApiError(503, "rooms_unavailable", "Private rooms are being restored; try again.",
                           retry_after=errors.REDIS_RETRY_S)
        if access is Access.NONE or member is None:
            raise not_found()
        return member

    def watch(self, client: Client, member: str) -> Callable[[], None]:
        """Close ``client`` once ``member`` may no longer read its room; return the function
        that stops watching it."""
        self._watched[client] = member
        if self._watcher is None or self._watcher.dead:
            self._watcher = gevent.spawn(self._run)

        def stop() -> None:
            self._watched.pop(client, None)

        return stop

    def _run(self) -> None:
        while self._watched:
            gevent.sleep(WATCH_INTERVAL_S)
            watched = list(self._watched.items())
            if not watched:
                break
            try:
                still = self.rooms.still_in([(client.room, member) for client, member in watched])
            except RedisError as error:
                log.warning("private rooms: membership not checked", extra={"error": str(error)})
                continue
            for (client, _), allowed in zip(watched, still, strict=True):
                if not allowed:
                    client.close("removed")
