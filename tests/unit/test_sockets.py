"""The stream service's socket writes (stream/sockets.py): whatever the size of a write and
however slowly the other end reads, every byte arrives, once, in order."""

import gevent
import pytest
from gevent import socket

from stream import sockets


@pytest.fixture
def pair():
    original = socket.socket.sendall
    sockets.install()
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()
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


def test_small_writes_arrive_whole_and_in_order(pair):
    a, b = pair
    frames = [b"event: message\nid: %d\ndata: {}\n\n" % i for i in range(10000)]
    reader = gevent.spawn(_read, b, sum(map(len, frames)))
    for frame in frames:
        a.sendall(frame)
    assert reader.get(timeout=60) == b"".join(frames)


def test_a_write_larger_than_the_socket_buffer_waits_for_a_slow_reader(pair):
    a, b = pair
    data = bytes(range(256)) * (8 * 4096)  # 8 MiB: far more than the kernel buffers at once
    reader = gevent.spawn(_read, b, len(data), 0.001)
    a.sendall(data)
    assert reader.get(timeout=60) == data


def test_a_write_to_a_closed_peer_raises(pair):
    a, b = pair
    b.close()
    with pytest.raises(OSError):
        for _ in range(1000):
            a.sendall(b"x" * 65536)
