"""Concurrent script calls of one ingest process share Redis round trips.

Every POST asks Redis once before it produces (admission.py). Made one round trip each, that
call was a fifth of an ingest worker's CPU under load: about 58 µs of client CPU on a raw
connection and 75 µs through redis-py, of which a bare ``PING`` costs 72 µs, so the cost is the
round trip (a send, a wait on the hub, a receive), not the script. Records already share Kafka
produce requests; here the calls share round trips the same way.

A sender (a thread; a greenlet under gevent) takes every call queued meanwhile, at most
``MAX_BATCH_CALLS``, and writes them to Redis at once, as a pipeline of ``EVALSHA`` on the one
connection it holds; each caller waits for its own reply. One batch is in flight at a time, so
a lone call is sent at once, and calls arriving during a round trip go together in the next.
Each script still runs alone and whole in Redis: sharing a round trip changes no reply.
Measured with ingest alone under 64 closed-loop posters (bench/README.md, "Admission calls share
round trips"): 873-893 -> 663-738 µs of ingest CPU per POST, 92-102 -> 39-44 µs of Redis CPU;
no difference at 50 and 200 msg/s, where calls rarely meet.

Fails closed, as one call did: a batch whose connection was dropped (a Redis restarted since)
is sent once more on a new connection; any other failure, or no reply within the caller's wait,
is the caller's ``RedisError`` (ingest answers 503). A script Redis no longer holds (restarted,
flushed) is loaded and its calls sent again.
"""

import logging
import os
import queue
import threading
from collections.abc import Sequence

from redis import ConnectionPool
from redis.commands.core import Script
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ingest import metrics

log = logging.getLogger(__name__)

# A batch's size bounds how long its last caller waits behind the others' replies: at the 40 µs
# of Redis CPU an admission call costs under load (bench/README.md), 128 calls take about 5 ms.
MAX_BATCH_CALLS = 128

Reply = list[int | str]


class Call:
    """One script call waiting for its batch."""

    __slots__ = ("script", "keys", "args", "reply", "done")

    def __init__(self, script: Script, keys: Sequence[str], args: Sequence[str | int]) -> None:
        self.script, self.keys, self.args = script, keys, args
        self.reply: Reply | RedisError | None = None
        self.done = threading.Event()


class SharedRoundTrips:
    """Script calls of this process, sent in batches on one connection taken from ``pool`` and
    held (so with the pool's settings). Each caller waits at most ``wait_s`` for its reply."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        # The batch ahead may take a socket timeout, this one a new connection's and its own.
        timeout = pool.connection_kwargs.get("socket_timeout")
        self.wait_s = 3 * float(timeout) if timeout else 3.0
        self._calls: queue.SimpleQueue[Call] = queue.SimpleQueue()
        self._connection: Connection | None = None
        self._started = False
        self._starting = threading.Lock()
        os.register_at_fork(after_in_child=self._forked)  # a forked worker starts a sender of its own

    def call(self, script: Script, keys: Sequence[str], args: Sequence[str | int]) -> Reply:
        """``script``'s reply to ``keys`` and ``args``; a RedisError if none came."""
        self._start()
        call = Call(script, keys, args)
        self._calls.put(call)
        if not call.done.wait(self.wait_s):
            raise RedisTimeoutError(f"no reply from Redis within {self.wait_s:g} s")
        if isinstance(call.reply, RedisError):
            raise call.reply
        assert call.reply is not None
        return call.reply

    def _start(self) -> None:
        if self._started:
            return
        with self._starting:
            if not self._started:
                threading.Thread(target=self._send_forever, name="redis-round-trips", daemon=True).start()
                self._started = True

    def _forked(self) -> None:
        """In a forked child: the parent's sender, calls and connection are not this process's."""
        self._calls = queue.SimpleQueue()
        self._connection = None
        self._started = False
        self._starting = threading.Lock()

    def _send_forever(self) -> None:
        while True:
            batch = [self._calls.get()]
            while len(batch) < MAX_BATCH_CALLS:
                try:
                    batch.append(self._calls.get_nowait())
                except queue.Empty:
                    break
            metrics.ADMISSION_ROUND_TRIPS.inc()
            metrics.ADMISSION_CALLS.inc(len(batch))
            try:
                replies = self._send(batch)
            except Exception as error:  # the sender must not die: every later caller would wait in vain
                log.exception("redis round trip failed")
                self._drop()  # whatever the connection holds now is not these calls' replies
                replies = [RedisError(str(error))] * len(batch)
            for call, reply in zip(batch, replies, strict=True):
                call.reply = reply
                call.done.set()

    def _send(self, batch: list[Call]) -> list[Reply | RedisError]:
        try:
            try:
                replies = self._round_trip(batch)
            except RedisConnectionError:  # dropped since the last batch (a Redis restart?): once more
                self._drop()
                replies = self._round_trip(batch)
        except RedisError as error:  # a timeout too: its replies may still come, so the connection goes
            self._drop()
            return [error] * len(batch)
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # Redis restarted or flushed its scripts: load them, send those calls again
            try:
                self._load({batch[i].script for i in missing})
                again = self._round_trip([batch[i] for i in missing])
            except RedisError as error:  # only those calls are refused: the others were answered
                self._drop()
                again = [error] * len(missing)
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    def _round_trip(self, batch: Sequence[Call]) -> list[Reply | RedisError]:
        if self._connection is None:
            self._connection = self._pool.get_connection()  # connects: a RedisError if Redis is not there
        connection = self._connection
        connection.send_packed_command(connection.pack_commands(
            [("EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args) for call in batch]))
        replies: list[Reply | RedisError] = []
        for _ in batch:
            try:
                replies.append(connection.read_response())
            except ResponseError as error:  # this call's error reply: the others' are still to read
                replies.append(error)
        return replies

    def _load(self, scripts: set[Script]) -> None:
        connection = self._connection
        assert connection is not None
        for script in scripts:
            connection.send_command("SCRIPT", "LOAD", script.script)
            connection.read_response()

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
            self._pool.release(self._connection)
            self._connection = None
