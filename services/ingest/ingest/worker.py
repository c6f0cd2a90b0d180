"""ingest's gunicorn worker: gunicorn's gevent worker, except that a stopping worker closes
its idle keep-alive connections at once, as gunicorn's thread worker does.

gunicorn's gevent worker waits, when told to stop, until every connection's greenlet has
ended or its graceful timeout has passed; a connection kept alive between two requests
(ingest keeps one 75 s, longer than the gateway's pool: gunicorn.conf.py) ends only at that
timeout, so every stop took the whole graceful timeout (20 s). Here, once the worker stops
accepting, a connection waiting for its next request with nothing received is shut down (its
greenlet then ends as on any closed connection), and a request under way is answered with
``Connection: close`` (gunicorn's own behaviour once the worker is no longer alive).
"""

import contextlib
import socket
from collections.abc import Iterator

import gevent
from gevent import select
from gunicorn.workers.ggevent import GeventWorker

SWEEP_S = 0.2  # how often a stopping worker looks for connections that went idle meanwhile


class IdleClosingGeventWorker(GeventWorker):  # type: ignore[misc]  # gunicorn has no type information
    def init_process(self) -> None:
        self._idle: dict[gevent.Greenlet, socket.socket] = {}  # greenlet -> its connection, between requests
        self._clients: dict[gevent.Greenlet, socket.socket] = {}
        gevent.spawn(self._close_idle_on_stop)
        super().init_process()

    def handle(self, listener: socket.socket, client: socket.socket, addr: object) -> None:
        me = gevent.getcurrent()
        self._clients[me] = client
        try:
            super().handle(listener, client, addr)
        finally:
            self._clients.pop(me, None)
            self._idle.pop(me, None)

    @contextlib.contextmanager
    def timeout_ctx(self) -> Iterator[None]:
        """Around the wait for a connection's next request (its only use in gunicorn's loop)."""
        me = gevent.getcurrent()
        client = self._clients.get(me)
        if client is not None:
            self._idle[me] = client
        try:
            with super().timeout_ctx():
                yield
        finally:
            self._idle.pop(me, None)

    def _close_idle_on_stop(self) -> None:
        while self.alive:
            gevent.sleep(SWEEP_S)
        while True:  # until the worker exits: a request answered meanwhile leaves its connection closing
            for client in list(self._idle.values()):
                readable, _, _ = select.select([client], [], [], 0)
                if not readable:  # nothing of a next request received: nobody is cut off
                    with contextlib.suppress(OSError):
                        client.shutdown(socket.SHUT_RDWR)
            gevent.sleep(SWEEP_S)
