"""Noticing at once that a stream's reader went away.

A stream's client sends nothing after its request, and the service writes to it only when
there is something to say: without a watch, a closed connection would be noticed at the next
heartbeat's write (STREAM_HEARTBEAT_S, 15 s; measured: presence and the name hold lasted
25 s after a tab closed). So each stream's socket is watched for reading: the first thing
readable on it (the peer's FIN or RST, or bytes a never-ending response could never answer)
ends the stream. The watch is an event-loop watcher with a callback, no greenlet: it costs
nothing while the stream is open.
"""

from collections.abc import Callable
from typing import Protocol

from gevent import get_hub

READ = 1  # libev/libuv's read event


class HasFileno(Protocol):
    def fileno(self) -> int: ...


def watch_hangup(sock: HasFileno | None, on_hangup: Callable[[], None]) -> Callable[[], None]:
    """Call ``on_hangup`` (from the event loop: it must not block) once ``sock`` becomes
    readable; return the function that stops the watch (call it before the connection is
    used for anything else)."""
    if sock is None:
        return _nothing
    try:
        fd = sock.fileno()
    except OSError:
        return _nothing
    watcher = get_hub().loop.io(fd, READ)

    def readable() -> None:
        watcher.stop()  # level-triggered: it would fire again at every loop iteration
        on_hangup()

    watcher.start(readable)

    def stop() -> None:
        watcher.stop()
        watcher.close()

    return stop


def _nothing() -> None:
    pass
