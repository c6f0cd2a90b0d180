"""One system call per socket write where gevent makes two.

gevent's ``socket.sendall`` asks the kernel for the socket's send-buffer size
(``getsockopt(SO_SNDBUF)``) before every write, to cut large payloads into chunks. The
stream service writes small frames (one event, or the few a stream had pending), which the
kernel takes whole nearly always: ``sendall`` here tries one plain send first and leaves
only what did not fit to gevent's own ``sendall``, which waits for the socket cooperatively
and keeps its timeout. Profiled at 10,000 deliveries/s, the extra system call was about a
tenth of a stream worker's CPU (bench/profiles/).
"""

from gevent import socket as gevent_socket

_gevent_sendall = gevent_socket.socket.sendall


def sendall(sock, data, flags=0):
    try:
        sent = sock._sock.send(data, flags)  # the underlying non-blocking socket
    except BlockingIOError:
        sent = 0
    if sent < len(data):
        _gevent_sendall(sock, memoryview(data)[sent:], flags)


def install():
    """Every gevent socket of this process writes through ``sendall`` above."""
    gevent_socket.socket.sendall = sendall
