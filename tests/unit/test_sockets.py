"""The stream service's socket writes (stream/transport.py): whatever the size of a write and
however slowly the other end reads, every byte arrives, once, in order; a gevent without what
the writes use stops the worker at its start, saying so."""

import socket as stdlib_socket

import gevent
import pytest
from gevent import socket

from stream import transport
from stream.transport import SocketTransport, TransportUnavailable


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
def installed():
    """Every gevent socket writes through the transport's sendall, as in a stream worker."""
    original = socket.socket.sendall
    transport.install_sendall()
    yield
    socket.socket.sendall = original


def _read(sock, size, pause=0.0):
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(65536)
        assert chunk, "the writer's end closed early"
        chunks.append(chunk)
        got += len(chunk)
        if pause:
            gevent.sleep(pause)
    return b"".join(chunks)


def _writers(a):
    """The two ways the stream writes with ``send_all``: its transport, and any gevent
    socket of the worker once install_sendall ran."""
    return {"transport": SocketTransport(a).send_all, "socket": a.sendall}


@pytest.mark.parametrize("way", ["transport", "socket"])
def test_small_writes_arrive_whole_and_in_order(pair, installed, way):
    a, b = pair
    send_all = _writers(a)[way]
    frames = [b"event: message\nid: %d\ndata: {}\n\n" % i for i in range(10000)]
    reader = gevent.spawn(_read, b, sum(map(len, frames)))
    for frame in frames:
        send_all(frame)
    assert reader.get(timeout=60) == b"".join(frames)


@pytest.mark.parametrize("way", ["transport", "socket"])
def test_a_write_larger_than_the_socket_buffer_waits_for_a_slow_reader(pair, installed, way):
    a, b = pair
    send_all = _writers(a)[way]
    data = bytes(range(256)) * (8 * 4096)  # 8 MiB: far more than the kernel buffers at once
    reader = gevent.spawn(_read, b, len(data), 0.001)
    send_all(data)
    assert reader.get(timeout=60) == data


@pytest.mark.parametrize("way", ["transport", "socket"])
def test_a_write_to_a_closed_peer_raises(pair, installed, way):
    a, b = pair
    send_all = _writers(a)[way]
    b.close()
    with pytest.raises(OSError):
        for _ in range(1000):
            send_all(b"x" * 65536)


def test_a_send_never_waits_it_answers_what_the_kernel_took(pair):
    a, b = pair
    a.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_SNDBUF, 4096)
    sent = SocketTransport(a).send(b"x" * (1 << 22))  # 4 MiB at once: the kernel takes a part
    assert 0 < sent < 1 << 22
    assert SocketTransport(a).send(b"y" * 65536) == 0  # full: nothing taken, no wait
    b.close()
    with pytest.raises(OSError):
        SocketTransport(a).send(b"z")


def test_shutdown_ends_the_connection_for_the_reader_and_never_raises(pair):
    a, b = pair
    SocketTransport(a).shutdown()
    assert b.recv(10) == b""  # the reader sees the end
    SocketTransport(a).shutdown()  # again, on a shut socket: nothing raised


def test_the_transport_of_a_request_follows_its_protocol():
    sock = object()
    assert transport.for_request({"SERVER_PROTOCOL": "HTTP/1.1", "gunicorn.socket": sock}).chunked is True
    assert transport.for_request({"SERVER_PROTOCOL": "HTTP/1.0", "gunicorn.socket": sock}).chunked is False
    assert transport.for_request({"SERVER_PROTOCOL": "HTTP/2", "gunicorn.socket": sock}) is None
    assert transport.for_request({"SERVER_PROTOCOL": "HTTP/1.1"}) is None  # not served by gunicorn
    assert transport.http_chunk(b"data: x\n\n") == b"9\r\ndata: x\n\n\r\n"


def test_the_startup_check_passes_with_this_gevent_and_fails_loudly_without_what_it_needs():
    transport.check()  # gevent's sockets, as gunicorn's gevent worker hands them to the app
    with pytest.raises(TransportUnavailable) as refused:
        transport.check(stdlib_socket.socketpair)  # a plain socket has no underlying _sock
    message = str(refused.value)
    assert "socket._sock" in message and "gevent " in message and "gunicorn " in message
