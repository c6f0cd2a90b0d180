"""A stream's bytes on gunicorn's socket: the one module that reaches into gevent's objects.

After gunicorn wrote a stream's headers and opening, the stream writes the rest itself, on
the socket gunicorn's gevent worker hands the app (``environ["gunicorn.socket"]``), framed
as gunicorn frames the response: an HTTP/1.1 chunk per write, as no Content-Length is set
(``http_chunk``), or the bare bytes on HTTP/1.0 (then the connection closes).

Two writes, each as few system calls as the kernel allows:

- ``send``, the hub's: one ``send`` on the gevent socket's underlying non-blocking socket
  (its private ``_sock``), never waiting and never switching greenlets; it answers how
  many bytes the kernel took.
- ``send_all``, the client's own greenlet's: one plain ``send`` first, and only what did not
  fit goes through gevent's ``sendall``, which waits cooperatively and keeps the socket's
  timeout. gevent's ``sendall`` asks the kernel for the send-buffer size
  (``getsockopt(SO_SNDBUF)``) before every write; profiled at 10,000 deliveries/s, that
  extra system call was about a tenth of a stream worker's CPU (bench/profiles/).
  ``install_sendall`` gives every gevent socket of the worker the same write (gunicorn's
  own writes of headers and openings, redis-py's commands).

``check`` (at worker start, gunicorn.conf.py) fails loudly when a gevent release no longer
has what these writes use, rather than letting the stream break at its first delivery.
``MemoryTransport`` stands in for a socket in unit tests.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import gevent
import gunicorn
from gevent import socket as gevent_socket

Data = bytes | memoryview

_gevent_sendall: Callable[..., None] = gevent_socket.socket.sendall  # before install_sendall


class TransportUnavailable(RuntimeError):
    """This gevent (or gunicorn) lacks what the stream's writes use."""


class Transport(Protocol):
    """Where a stream's bytes go after its opening."""

    chunked: bool  # each write is framed as an HTTP/1.1 chunk (``http_chunk``), else bare

    def send(self, data: Data) -> int:
        """Write what the kernel takes now without waiting: the bytes taken (0 when the
        socket is full). OSError: the reader is gone."""
        ...

    def send_all(self, data: Data) -> None:
        """Write all of ``data``, waiting cooperatively while the socket is full. OSError:
        the reader is gone (or the socket was shut down meanwhile)."""
        ...

    def shutdown(self) -> None:
        """End the TCP connection itself (both ways); never raises."""
        ...


def http_chunk(frame: bytes) -> bytes:
    """``frame`` as one HTTP/1.1 chunk, as gunicorn frames a response without a length."""
    return b"%X\r\n%s\r\n" % (len(frame), frame)


def _send(sock: Any, data: Data, flags: int = 0) -> int:
    try:
        sent: int = sock._sock.send(data, flags)  # gevent's underlying non-blocking socket
    except BlockingIOError:
        return 0
    return sent


def _sendall(sock: Any, data: Data, flags: int = 0) -> None:
    sent = _send(sock, data, flags)
    if sent < len(data):
        _gevent_sendall(sock, memoryview(data)[sent:], flags)


class SocketTransport:
    """A gevent socket (gunicorn's, for one request)."""

    __slots__ = ("_sock", "chunked")

    def __init__(self, sock: Any, chunked: bool = True) -> None:
        self._sock = sock  # a gevent socket: typed Any, gevent has no type information
        self.chunked = chunked

    def send(self, data: Data) -> int:
        # _send inlined: the hub's write of every delivery (a delivery costs about 3 us of
        # CPU; a Python call, about 0.1 us of it)
        try:
            sent: int = self._sock._sock.send(data)
        except BlockingIOError:
            return 0
        return sent

    def send_all(self, data: Data) -> None:
        _sendall(self._sock, data)

    def shutdown(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def for_request(environ: Mapping[str, Any]) -> SocketTransport | None:
    """The transport of a WSGI request served by gunicorn's gevent worker, framed as
    gunicorn frames its response (HTTP/1.1: chunked, as no Content-Length is set; HTTP/1.0:
    the bare bytes); None for any other protocol or server (the stream's opening is all)."""
    protocol = environ.get("SERVER_PROTOCOL")
    sock = environ.get("gunicorn.socket")
    if protocol not in ("HTTP/1.0", "HTTP/1.1") or sock is None:
        return None
    return SocketTransport(sock, chunked=protocol == "HTTP/1.1")


def install_sendall() -> None:
    """Every gevent socket of this process writes as ``send_all`` does: one system call
    where the kernel takes the write whole."""
    gevent_socket.socket.sendall = _sendall


def check(pair: Callable[[], tuple[Any, Any]] = gevent_socket.socketpair) -> None:
    """Fail loudly, naming the versions, unless a socket of ``pair`` (gevent's, as gunicorn's
    gevent worker hands the app) has what the writes above use: an underlying socket
    ``_sock`` that is non-blocking, with ``send``; ``sendall`` and ``shutdown`` of its own."""
    a, b = pair()
    try:
        raw = getattr(a, "_sock", None)
        missing = [name for name, ok in (
            ("socket._sock", raw is not None),
            ("socket._sock.send", callable(getattr(raw, "send", None))),
            ("socket._sock non-blocking", raw is not None and _non_blocking(raw)),
            ("socket.sendall", callable(getattr(a, "sendall", None))),
            ("socket.shutdown", callable(getattr(a, "shutdown", None))),
        ) if not ok]
    finally:
        a.close()
        b.close()
    if missing:
        raise TransportUnavailable(
            f"stream/transport.py cannot write to {type(a).__module__}.{type(a).__qualname__} under gevent "
            f"{gevent.__version__} and gunicorn {gunicorn.__version__}: missing {', '.join(missing)}. "
            "Pin the versions in requirements/services.txt or adapt stream/transport.py."
        )


def _non_blocking(raw: Any) -> bool:
    try:
        return bool(raw.gettimeout() == 0.0)
    except (AttributeError, OSError):
        return False


class MemoryTransport:
    """A transport into memory, for unit tests: ``writes`` records each write; ``take``
    bytes at most are taken by the next ``send`` (0: the socket is full), then all again;
    ``gone`` makes every write raise, as a reader that left."""

    def __init__(self, chunked: bool = True, take: int | None = None) -> None:
        self.chunked = chunked
        self.take = take
        self.gone = False
        self.shut = False
        self.writes: list[bytes] = []

    def send(self, data: Data) -> int:
        if self.gone:
            raise BrokenPipeError()
        size = len(data) if self.take is None else min(len(data), self.take)
        self.take = None
        if size:
            self.writes.append(bytes(data[:size]))
        return size

    def send_all(self, data: Data) -> None:
        if self.gone:
            raise BrokenPipeError()
        self.writes.append(bytes(data))

    def shutdown(self) -> None:
        self.shut = True

    def written(self) -> bytes:
        return b"".join(self.writes)
