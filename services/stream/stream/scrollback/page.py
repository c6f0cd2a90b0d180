"""A history page older than the Redis window: the index lookup, then the records it names
(cached or read), else a scan; then the next older page read ahead."""

import contextlib
import time

from kafka import TopicPartition
from redis import Redis

from stream import metrics
from stream.config import Config
from stream.scrollback.budget import ClientBudget
from stream.scrollback.cache import MessageCache
from stream.scrollback.lookup import IndexLookup, Lookup
from stream.scrollback.readahead import ReadAhead
from stream.scrollback.readers import ReaderPool
from stream.scrollback.records import Older, RecordReader
from stream.scrollback.shown import ShownFilter
from stream.scrollback.turns import RoomTurns


class Scrollback:
    """A worker's reader of rooms' older pages; its parts are public for the tests to reach."""

    def __init__(self, redis: Redis, config: Config, readers: ReaderPool | None = None) -> None:
        self.config = config
        self.budget = ClientBudget(redis, config.scrollback_client_records, config.scrollback_client_window_s)
        self.lookup = IndexLookup(redis, self.budget)
        self.cache = MessageCache(config.scrollback_cache_messages)
        self.readers = readers or ReaderPool(
            config.kafka_bootstrap_servers, config.scrollback_readers, config.scrollback_wait_s)
        self.turns = RoomTurns()
        self.records = RecordReader(self.readers, self.cache)
        self.filter = ShownFilter(redis)
        self.read_ahead = ReadAhead(self.records, self.readers, self.cache, self.budget, self.turns,
                                    config.scrollback_scan_records)

    def older(self, room: str, partition: int, below: int, count: int, client: str | None,
              ahead: int | None = None) -> Older:
        """Up to ``count`` of the room's messages with an id below ``below``, newest first;
        then the ``ahead`` (default ``count``) next older ones are read ahead.
        Raises ClientLimited once ``client`` caused its share of records read."""
        started = time.perf_counter()
        ahead = ahead or count
        result = Older([])
        tp = TopicPartition(self.config.kafka_topic, partition)
        deadline = time.monotonic() + self.config.scrollback_page_ms / 1000
        try:
            self.read(tp, room, below, count, result, deadline, client, ahead)
        finally:
            metrics.SCROLLBACK_SECONDS.observe(time.perf_counter() - started)
            self.budget.charge(client, result.records, room)
        if result.ahead and self.config.scrollback_prefetch and self.cache.size > 0:
            within_share = result.used + result.records < self.budget.records
            self.read_ahead.start(tp, room, result.ahead[-ahead:], client, within_share)
        return result

    def read(self, tp: TopicPartition, room: str, below: int, count: int, result: Older, deadline: float,
             client: str | None, ahead: int) -> None:
        """The page into ``result``: through the index as long as it has the room's older
        offsets, then (below it, or without one) a scan, within the page's budget."""
        beginning = self.readers.beginning(tp)
        budget = self.config.scrollback_scan_records  # records one page may read, whichever way
        high, found = below, None
        while True:  # through the index, as long as it has the room's older offsets
            if result.records >= budget or (found and time.monotonic() >= deadline):
                result.cursor = high
                result.ahead = found.ahead if found else []
                return
            found = self.lookup.find(room, tp.partition, high, count - len(result.messages), beginning, ahead, client)
            result.used = found.used
            if found.indexed is None:
                break  # the partition's history predates the index (the bridge adopts it within seconds)
            if self._from_index(tp, room, found, result, budget, deadline):
                return
            if found.exhausted:
                break  # the index has nothing older of the room (that the log still holds)
            if len(result.messages) >= count:
                result.ahead = found.ahead  # the page is full: the next one wants these
                return
            assert found.oldest is not None  # the lookup looked at entries: it goes on below them
            high = found.oldest  # deleted ones filled the lookup's share, or a record was a repeat
        if len(result.messages) >= count:
            return
        # Below the index (or without one): scan, within the budget.
        indexed = found.indexed
        top = high if indexed is None else min(high, indexed)
        if top > beginning:
            self.records.scan(tp, room, top, beginning, count, budget, result, deadline, self.filter.shown)
        if result.cursor is None and beginning > 0 and indexed != 0:
            # The index starts past the log's beginning: it cannot tell whether retention
            # removed older messages of this room, so the page does not claim the room's start.
            result.older_removed = True

    def _from_index(self, tp: TopicPartition, room: str, found: Lookup, result: Older, budget: int,
                    deadline: float) -> bool:
        """Add the messages at the lookup's offsets to ``result``; True if a budget ran out
        (the page ends there, with a cursor)."""
        # A page the cache holds whole waits for no other page of its room.
        cached = self.cache.holds(tp.partition, found.entries)
        with contextlib.nullcontext() if cached else self.turns.turn(room):
            messages, read, stopped = self.records.fetch(tp, found.entries, budget - result.records, deadline)
        metrics.SCROLLBACK_RECORDS.labels("index").inc(read)
        result.records += read
        result.messages.extend(reversed(self.filter.firsts(room, messages)))
        if stopped is not None:
            # What is below the cursor comes next page (and is read ahead).
            result.cursor = stopped
            result.ahead = [o for o in found.entries if o < stopped] + found.ahead
            return True
        if found.removed:
            result.older_removed = True  # some of the room's messages were retained no longer
        return False

    def close(self) -> None:
        """Close the Kafka consumers not in use."""
        self.readers.close()
