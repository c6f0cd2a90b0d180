"""Reading the log's records into a page: exactly the offsets the index named (``fetch``), or,
where the index does not reach, the partition backwards (``scan``), each within the page's
budget of records and time."""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gevent
from kafka import TopicPartition

from chat_common.messages import Message, message_or_none
from stream import metrics
from stream.scrollback.cache import MessageCache
from stream.scrollback.readers import ReaderPool, poll
from stream.scrollback.shown import Shown

SCAN_CHUNK = 500  # offsets read per step when scanning a partition backwards
NEAR = 64  # wanted offsets this close to one another are read in one run, not each sought


@dataclass
class Older:
    """What a page found older than the Redis window."""

    messages: Shown  # (message json, id) newest first
    cursor: int | None = None  # the read stopped here, short of the log's beginning: continue below it
    older_removed: bool = False  # the log's retention removed (or may have removed) older messages of the room
    records: int = 0  # Kafka records read
    ahead: list[int] = field(default_factory=list)  # the offsets the room's next older page wants (increasing)
    used: int = 0  # the records the client had caused to be read before this page


Fetched = tuple[list[Message], int, int | None]  # messages, records read, the offset below which none was read


def message(record: Any) -> Message | None:
    """The chat message a record holds, or None (a tombstone, or no chat record: the bridge
    skipped it too)."""
    found: Message | None = message_or_none(record.value, record.offset)
    return found


class RecordReader:
    def __init__(self, readers: ReaderPool, cache: MessageCache) -> None:
        self.readers = readers
        self.cache = cache

    def fetch(self, tp: TopicPartition, offsets: Sequence[int], budget: int, deadline: float,
              page: bool = True) -> Fetched:
        """The records at ``offsets`` (increasing) as messages, how many records were read
        from Kafka, and, if ``budget`` records or the time up to ``deadline`` ran out first
        (after one run at least, or none if the cache gave messages above the first run to
        read), the offset below which none was read (else None). Offsets the cache holds are
        not read; the others within NEAR of one another are read in one run, the newest run
        first. ``page``: for a page (counted in the cache's hits and misses), not a read ahead."""
        found: dict[int, Message | None] = {}
        runs: list[list[int]] = []
        for offset in offsets:
            cached = self.cache.get(tp.partition, offset)
            if cached is not None:
                found[offset] = cached
            elif runs and offset - runs[-1][1] <= NEAR:
                runs[-1][1] = offset
            else:
                runs.append([offset, offset])
        if page:
            metrics.SCROLLBACK_CACHE.labels("hit").inc(len(found))
        if not runs:
            return _kept(found, offsets), 0, None
        newest = runs[-1][1]
        if page and time.monotonic() >= deadline and any(o > newest for o in found):
            # Its time went waiting for the room: the page answers what the cache gave it.
            return _kept(found, [o for o in offsets if o > newest]), 0, newest + 1
        wanted, read = set(offsets), 0
        with self.readers.consumer(tp) as kafka:
            kafka.resume(tp)
            try:
                for first, last in reversed(runs):
                    if read >= budget or (read and time.monotonic() >= deadline):
                        # Only what lies above the cursor: the next page reads on below it
                        # (the cache may hold older offsets of this page too).
                        return _kept(found, [o for o in offsets if o > last]), read, last + 1
                    kafka.seek(tp, first)
                    position = first
                    while position <= last:
                        records = poll(kafka, tp, last - position + 1)
                        if not records or records[0].offset < position:
                            break  # the end of the log, or retention moved its beginning past us
                        for record in records:
                            read += 1
                            if record.offset in wanted and record.offset not in found:
                                found[record.offset] = read_message = message(record)
                                self.cache.put(tp.partition, record.offset, read_message)
                                if page:
                                    metrics.SCROLLBACK_CACHE.labels("miss").inc()
                        position = records[-1].offset + 1
            finally:
                kafka.pause(tp)  # no fetch ahead between pages
        return _kept(found, offsets), read, None

    def scan(self, tp: TopicPartition, room: str, high: int, beginning: int, count: int, budget: int,
             result: Older, deadline: float, shown: Callable[[str, Sequence[Message]], Shown]) -> None:
        """Walk the partition backwards from ``high``, adding the room's messages that are
        ``shown`` to ``result`` until it holds ``count``, the log's beginning, or the page's
        budget of records or time (then ``result.cursor`` is where it stopped)."""
        key = room.encode()
        budget -= result.records
        read = 0
        with self.readers.consumer(tp) as consumer:
            consumer.resume(tp)
            try:
                while high > beginning and len(result.messages) < count:
                    if read >= budget or (read and time.monotonic() >= deadline):
                        result.cursor = high
                        break
                    low = max(beginning, high - min(SCAN_CHUNK, budget - read))
                    consumer.seek(tp, low)
                    chunk = []
                    while True:
                        records = poll(consumer, tp, high - low)
                        for record in records:
                            if record.offset >= high:
                                break
                            read += 1
                            if record.key == key:
                                chunk.append(record)
                        if not records or records[-1].offset + 1 >= high:
                            break
                    messages = [m for m in map(message, chunk) if m is not None]
                    result.messages.extend(reversed(shown(room, messages)))
                    high = low
                    gevent.sleep(0)  # let the worker's live streams run between chunks
            finally:
                consumer.pause(tp)
                metrics.SCROLLBACK_RECORDS.labels("scan").inc(read)
                result.records += read


def _kept(found: dict[int, Message | None], offsets: Sequence[int]) -> list[Message]:
    """The messages found at ``offsets``, in their order (records that held none left out)."""
    return [m for m in (found.get(o) for o in offsets) if m is not None]
