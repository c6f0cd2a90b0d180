"""Pages of one room read the log one at a time in a worker: members scrolling up together wait
for the first to read what they all want, then find it in the cache."""

import contextlib
from collections.abc import Iterator

from gevent.lock import Semaphore


class RoomTurns:
    def __init__(self) -> None:
        self._rooms: dict[str, tuple[Semaphore, list[int]]] = {}  # room -> its lock, [pages holding or waiting]

    @contextlib.contextmanager
    def turn(self, room: str) -> Iterator[None]:
        """Hold the room's turn to read the log (waiting for it)."""
        lock, users = self._rooms.setdefault(room, (Semaphore(), [0]))
        users[0] += 1
        try:
            with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._rooms[room]
