"""Reading a room's next older page ahead, into the worker's cache.

A reader paging back asks for the next older page as soon as it has shown one. So once a page
is answered, the worker reads the room's next older page into its cache in the background at
the offsets the page's lookup named: one run of records at a time, at most one such read per
room, only while a Kafka consumer is free and no page waits for one, within the page's budget
of records and charged to the client whose page asked for it. The next page finds it cached."""

import logging
from collections.abc import Sequence

import gevent
from kafka import TopicPartition

from stream import metrics
from stream.scrollback.budget import ClientBudget
from stream.scrollback.cache import MessageCache
from stream.scrollback.readers import ReaderPool
from stream.scrollback.records import RecordReader
from stream.scrollback.turns import RoomTurns

log = logging.getLogger(__name__)


class ReadAhead:
    def __init__(self, records: RecordReader, readers: ReaderPool, cache: MessageCache, budget: ClientBudget,
                 turns: RoomTurns, max_records: int) -> None:
        self.records = records
        self.readers = readers
        self.cache = cache
        self.budget = budget
        self.turns = turns
        self.max_records = max_records  # records one read ahead may read, as a page
        self._rooms: set[str] = set()  # rooms whose next older page is being read ahead

    def running(self) -> bool:
        """Some room's next page is being read ahead now."""
        return bool(self._rooms)

    def start(self, tp: TopicPartition, room: str, offsets: Sequence[int], client: str | None,
              within_share: bool) -> None:
        """Read the records at ``offsets`` (the room's next older page, as the page's lookup
        found it) into the cache, in the background, unless the cache holds them, the room's
        next page is being read ahead already or the client read its share (``within_share``
        false: it had, counting the page)."""
        beginning = self.readers.known_beginning(tp.partition)  # as the page just read it
        wanted = [o for o in offsets if o >= beginning and self.cache.get(tp.partition, o) is None]
        if not wanted or room in self._rooms:
            return
        if not within_share:
            metrics.SCROLLBACK_PREFETCH.labels("client_limit").inc()
            return
        self._rooms.add(room)
        gevent.spawn(self._run, tp, room, wanted, client)

    def _run(self, tp: TopicPartition, room: str, offsets: list[int], client: str | None) -> None:
        read = 0
        outcome = "done"
        try:
            while offsets and read < self.max_records:
                with self.turns.turn(room):  # one run, then pages waiting for the room go first
                    if self.readers.busy():
                        outcome = "busy"  # pages come first: the next page reads what is left
                        return
                    _, run_read, stopped = self.records.fetch(
                        tp, offsets, self.max_records - read, deadline=0, page=False)
                    metrics.SCROLLBACK_RECORDS.labels("prefetch").inc(run_read)
                read += run_read
                if stopped is None:
                    return
                offsets = [o for o in offsets if o < stopped]
                gevent.sleep(0)
        except Exception:  # a read ahead is a convenience: the page reads what it finds missing
            outcome = "failed"
            log.warning("reading a room's older page ahead failed", exc_info=True)
        finally:
            self._rooms.discard(room)
            metrics.SCROLLBACK_PREFETCH.labels(outcome).inc()
            try:
                self.budget.charge(client, read, room)
            except Exception:
                log.warning("charging a read ahead to its client failed", exc_info=True)
