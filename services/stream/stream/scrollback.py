"""Paging back past the Redis window: a room's older messages read from Kafka itself.

The bridge keeps, per room, an index of the room's offsets (bridge/index.py). A page
binary-searches it for the ``count`` offsets before ``below`` whose message was not deleted
and fetches exactly those records, so its cost follows the page, not the traffic of the
other rooms in the partition. That lookup is one Lua call (LOOKUP_SCRIPT), which also checks
the client's share and names the next older page's offsets, for the read ahead: a page the
cache holds costs this call and the window's MULTI/EXEC (history.py), two Redis round trips.
A page reads the log for ``page_ms`` at most (at least one run of records, unless the cache
gave it the newest part of the page and its time went waiting for the room): past that it
answers what it has, with a cursor to continue from, so a reader sees a first part at once
where the records are slow to read. Below ``indexed:<partition>`` (just after Redis came
back empty, while the bridge re-indexes in the background) the page scans the log
backwards instead, within ``scan_records`` per request, and hands back a cursor where it
stopped.

What a record of the log holds never changes, so each worker keeps the messages it read
last (``cache_messages``, by partition and offset): readers paging back through the same
room, as a room's members do, read Kafka once between them: in a worker, one page of a
room reads the log at a time, and the next finds what it read; a page the cache holds
whole does not wait for the room. Deletions (by the lookup) and retried copies
(``_firsts``) are filtered at every page, never cached; offsets retention removed are
dropped before the cache is asked.

A reader paging back asks for the next older page as soon as it has shown one. So once a
page is answered, the worker reads the room's next older page into its cache in the
background (``prefetch``) at the offsets the page's lookup named: one run of records at a
time, at most one such read per room, only while a Kafka consumer is free and no page waits
for one, within the page's budget of records and charged to the client whose page asked
for it. The next page finds it cached.

Bounds: each worker has ``readers`` Kafka consumers, taken for one read at a time, and a
read waits at most ``wait_s`` for one (then 503); a page answered from the cache takes none.
A client address may cause ``client_records`` records read per ``client_window_s`` (then 429).
"""

import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import gevent
from gevent.lock import Semaphore
from gevent.queue import Empty, Queue
from kafka import TopicPartition
from kafka.errors import KafkaError

from chat_common.kafka_reader import log_reader
from chat_common.messages import (
    OFFSETS_LUA,
    STATE_KEY,
    Message,
    client_id_key,
    deleted_key,
    offsets_key,
    unpack_offsets,
)
from stream import metrics

log = logging.getLogger(__name__)

SCAN_CHUNK = 500  # offsets read per step when scanning a partition backwards
NEAR = 64  # wanted offsets this close to one another are read in one run, not each sought
BEGINNING_TTL_S = 10.0  # how long a partition's first offset (moved only by retention) is reused

LOOKUP_EXAMINED = 1_000  # index entries one lookup looks at, at most, past the deleted ones it skips

# One call per page (a round trip): the client's share, then the room's index.
# KEYS[1]: the room's offset index, KEYS[2]: state, KEYS[3]: the room's deleted ids,
# KEYS[4]: the client's count of records read.
# ARGV[1]: below, ARGV[2]: count, ARGV[3]: partition, ARGV[4]: the log's first offset,
# ARGV[5]: ahead, ARGV[6]: the client's share, ARGV[7]: LOOKUP_EXAMINED.
# Returns {'limited', the counter's TTL} once the client read its share; else {entries,
# indexed, oldest, exhausted, removed, ahead}: entries, the (up to) count newest offsets below
# ARGV[1] and at or above ARGV[4] whose message was not deleted (increasing, packed);
# indexed:<partition> ('' if none); oldest, the oldest offset looked at ('' if none: the next
# lookup goes on below it); exhausted, 1 if the index holds nothing below oldest (from the
# log's first offset on); removed, 1 if the room's first entry is below the log's first
# offset (retention removed messages of the room); ahead, the ARGV[5] entries below oldest
# (increasing, packed: what the page after this one wants, deleted or not); used, the
# client's count.
LOOKUP_SCRIPT = OFFSETS_LUA + """
local used = tonumber(redis.call('GET', KEYS[4]) or '0')
if used >= tonumber(ARGV[6]) then return {'limited', redis.call('TTL', KEYS[4])} end
local indexed = redis.call('HGET', KEYS[2], 'indexed:' .. ARGV[3]) or ''
local beginning, count, most = tonumber(ARGV[4]), tonumber(ARGV[2]), tonumber(ARGV[7])
local lo = entries_below(KEYS[1], tonumber(ARGV[1]))
local kept, n, examined, oldest, exhausted = {}, 0, 0, '', 0
while n < count and examined < most do
  if lo == 0 then exhausted = 1 break end
  local take = math.min(lo, count - n)
  local block = redis.call('GETRANGE', KEYS[1], (lo - take) * 8, lo * 8 - 1)
  for i = take, 1, -1 do
    local entry = string.sub(block, i * 8 - 7, i * 8)
    local offset = struct.unpack('>I8', entry)
    if offset < beginning then exhausted = 1 break end
    lo, examined, oldest = lo - 1, examined + 1, entry
    if redis.call('SISMEMBER', KEYS[3], string.format('%.0f', offset)) == 0 then
      n = n + 1
      kept[n] = entry
    end
  end
  if exhausted == 1 then break end
end
if exhausted == 0 and (lo == 0 or struct.unpack('>I8', redis.call('GETRANGE', KEYS[1], (lo - 1) * 8, lo * 8 - 1)) < beginning) then
  exhausted = 1
end
local entries = {}
for i = n, 1, -1 do entries[#entries + 1] = kept[i] end
local ahead = ''
local start = math.max(0, lo - tonumber(ARGV[5]))
if lo > start then ahead = redis.call('GETRANGE', KEYS[1], start * 8, lo * 8 - 1) end
local removed = 0
if redis.call('STRLEN', KEYS[1]) > 0 and struct.unpack('>I8', redis.call('GETRANGE', KEYS[1], 0, 7)) < beginning then
  removed = 1
end
return {table.concat(entries), indexed, oldest, exhausted, removed, ahead, used}
"""


@dataclass
class Lookup:
    """What the index gave a page: see LOOKUP_SCRIPT."""

    entries: list  # offsets, increasing
    indexed: int | None
    oldest: int | None
    exhausted: bool
    removed: bool
    ahead: list  # offsets, increasing
    used: int  # the records the client had caused to be read


def _message(record):
    """The chat message a record holds, or None (not one: the bridge skipped it too)."""
    try:
        return Message.from_kafka(record.value, record.offset)
    except (ValueError, KeyError, TypeError):
        return None


class MessageCache:
    """The chat messages a worker last read from the log, by (partition, offset), least
    recently used out first."""

    def __init__(self, size):
        self.size = size
        self._messages = OrderedDict()

    def get(self, partition, offset):
        message = self._messages.get((partition, offset))
        if message is not None:
            self._messages.move_to_end((partition, offset))
        return message

    def put(self, partition, offset, message):
        if self.size <= 0 or message is None:
            return
        self._messages[(partition, offset)] = message
        self._messages.move_to_end((partition, offset))
        while len(self._messages) > self.size:
            self._messages.popitem(last=False)


class Busy(Exception):
    """Every Kafka reader of this worker stayed busy for ``wait_s``."""


class ClientLimited(Exception):
    """This client caused its share of Kafka reads for now."""

    def __init__(self, retry_after):
        super().__init__(retry_after)
        self.retry_after = retry_after


@dataclass
class Older:
    messages: list  # (message json, id) newest first
    cursor: int | None = None  # the scan stopped here, short of the log's beginning: continue below it
    older_removed: bool = False  # the log's retention removed (or may have removed) older messages of the room
    records: int = 0  # Kafka records read
    ahead: list = field(default_factory=list)  # the offsets the room's next older page wants (increasing)
    used: int = 0  # the records the client had caused to be read before this page


class Scrollback:
    def __init__(self, redis, config):
        self.redis = redis
        self.config = config
        self._lookup = redis.register_script(LOOKUP_SCRIPT)
        self._idle = Queue()  # Kafka consumers not in use
        self._created = 0
        self._beginnings = {}  # partition -> (its first offset, time.monotonic() read)
        self._cache = MessageCache(config.scrollback_cache_messages)
        self._rooms_reading = {}  # room -> [its lock, pages holding or waiting for it]
        self._prefetching = set()  # rooms whose next older page is being read ahead
        self._waiting = 0  # reads waiting for a Kafka consumer

    def older(self, room, partition, below, count, client, ahead=None):
        """Up to ``count`` of the room's messages with an id below ``below``, newest first;
        then the ``ahead`` (default ``count``) next older ones are read ahead (``prefetch``).
        Raises ClientLimited once ``client`` caused its share of records read."""
        started = time.perf_counter()
        ahead = ahead or count
        result = Older([])
        tp = TopicPartition(self.config.kafka_topic, partition)
        deadline = time.monotonic() + self.config.scrollback_page_ms / 1000
        try:
            self._read(tp, room, below, count, result, deadline, client, ahead)
        finally:
            metrics.SCROLLBACK_SECONDS.observe(time.perf_counter() - started)
            self._charge(client, result.records)
        if result.ahead and self.config.scrollback_prefetch and self._cache.size > 0:
            within_share = result.used + result.records < self.config.scrollback_client_records
            self._start_prefetch(tp, room, result.ahead[-ahead:], client, within_share)
        return result

    def _read(self, tp, room, below, count, result, deadline, client, ahead):
        beginning = self._beginning(tp)
        budget = self.config.scrollback_scan_records  # records one page may read, whichever way
        high, found = below, None
        while True:  # through the index, as long as it has the room's older offsets
            if result.records >= budget or (found and time.monotonic() >= deadline):
                result.cursor = high
                result.ahead = found.ahead if found else []
                return
            found = self._look_up(room, tp.partition, high, count - len(result.messages), beginning, ahead, client)
            result.used = found.used
            if found.indexed is None:
                break  # the partition's history predates the index (the bridge adopts it within seconds)
            # A page the cache holds whole waits for no other page of its room.
            cached = all(self._cache.get(tp.partition, o) is not None for o in found.entries)
            with contextlib.nullcontext() if cached else self._one_at_a_time(room):
                messages, read, stopped = self._fetch(tp, found.entries, budget - result.records, deadline)
            metrics.SCROLLBACK_RECORDS.labels("index").inc(read)
            result.records += read
            result.messages.extend(reversed(self._firsts(room, messages)))
            if stopped is not None:
                # A budget ran out: what is below it comes next page (and is read ahead).
                result.cursor = stopped
                result.ahead = [o for o in found.entries if o < stopped] + found.ahead
                return
            if found.removed:
                result.older_removed = True  # some of the room's messages were retained no longer
            if found.exhausted:
                break  # the index has nothing older of the room (that the log still holds)
            if len(result.messages) >= count:
                result.ahead = found.ahead  # the page is full: the next one wants these
                return
            high = found.oldest  # deleted ones filled the lookup's share, or a record was a repeat: look further back
        if len(result.messages) >= count:
            return
        # Below the index (or without one): scan, within the budget.
        indexed = found.indexed
        top = high if indexed is None else min(high, indexed)
        if top > beginning:
            self._scan(tp, room, top, beginning, count, budget, result, deadline)
        if result.cursor is None and beginning > 0 and indexed != 0:
            # The index starts past the log's beginning: it cannot tell whether retention
            # removed older messages of this room, so the page does not claim the room's start.
            result.older_removed = True

    def _look_up(self, room, partition, below, count, beginning, ahead, client):
        """The index's ``count`` newest offsets of the room below ``below`` that are still
        shown (LOOKUP_SCRIPT), in the same call as the client's share; raises ClientLimited
        past that share."""
        client_key = self._client_key(client)
        reply = self._lookup(
            keys=[offsets_key(room), STATE_KEY, deleted_key(room), client_key],
            args=[below, count, partition, beginning, ahead, self.config.scrollback_client_records, LOOKUP_EXAMINED],
        )
        if reply[0] == b"limited":
            metrics.SCROLLBACK_REFUSED.labels("client_limit").inc()
            ttl = reply[1]
            raise ClientLimited(ttl if ttl and ttl > 0 else self.config.scrollback_client_window_s)
        entries, indexed, oldest, exhausted, removed, ahead_entries, used = reply
        return Lookup(
            entries=unpack_offsets(entries),
            indexed=int(indexed) if indexed else None,
            oldest=unpack_offsets(oldest)[0] if oldest else None,
            exhausted=bool(exhausted),
            removed=bool(removed),
            ahead=unpack_offsets(ahead_entries),
            used=int(used),
        )

    def _fetch(self, tp, offsets, budget, deadline, page=True):
        """The records at ``offsets`` (increasing) as messages, how many records were read
        from Kafka, and, if ``budget`` records or the time up to ``deadline`` ran out first
        (after one run at least, or none if the cache gave messages above the first run to
        read), the offset below which none was read (else None). Offsets
        the cache holds are not read; the others within NEAR of one another are read in one
        run, the newest run first. ``page``: for a page (counted in the cache's hits and
        misses), not a read ahead."""
        found = {}
        runs = []
        for offset in offsets:
            cached = self._cache.get(tp.partition, offset)
            if cached is not None:
                found[offset] = cached
            elif runs and offset - runs[-1][1] <= NEAR:
                runs[-1][1] = offset
            else:
                runs.append([offset, offset])
        if page:
            metrics.SCROLLBACK_CACHE.labels("hit").inc(len(found))
        if not runs:
            return [found[o] for o in offsets], 0, None
        newest = runs[-1][1]
        if page and time.monotonic() >= deadline and any(o > newest for o in found):
            # Its time went waiting for the room: the page answers what the cache gave it.
            return [found[o] for o in offsets if o > newest and found.get(o)], 0, newest + 1
        wanted, read = set(offsets), 0
        with self._consumer(tp) as kafka:
            kafka.resume(tp)
            try:
                for first, last in reversed(runs):
                    if read >= budget or (read and time.monotonic() >= deadline):
                        # Only what lies above the cursor: the next page reads on below it
                        # (the cache may hold older offsets of this page too).
                        return [found[o] for o in offsets if o > last and found.get(o)], read, last + 1
                    kafka.seek(tp, first)
                    position = first
                    while position <= last:
                        records = self._poll(kafka, tp, last - position + 1)
                        if not records or records[0].offset < position:
                            break  # the end of the log, or retention moved its beginning past us
                        for record in records:
                            read += 1
                            if record.offset in wanted and record.offset not in found:
                                found[record.offset] = message = _message(record)
                                self._cache.put(tp.partition, record.offset, message)
                                if page:
                                    metrics.SCROLLBACK_CACHE.labels("miss").inc()
                        position = records[-1].offset + 1
            finally:
                kafka.pause(tp)  # no fetch ahead between pages
        return [found[o] for o in offsets if found.get(o)], read, None

    # -- reading ahead ----------------------------------------------------------------------

    def _start_prefetch(self, tp, room, offsets, client, within_share):
        """Read the records at ``offsets`` (the room's next older page, as the page's lookup
        found it) into the cache, in the background, unless the cache holds them, the room's
        next page is being read ahead already or the client read its share (``within_share``
        false: it had, counting the page)."""
        beginning, _ = self._beginnings.get(tp.partition, (0, 0.0))  # as the page just read it
        offsets = [o for o in offsets if o >= beginning and self._cache.get(tp.partition, o) is None]
        if not offsets or room in self._prefetching:
            return
        if not within_share:
            metrics.SCROLLBACK_PREFETCH.labels("client_limit").inc()
            return
        self._prefetching.add(room)
        gevent.spawn(self._prefetch, tp, room, offsets, client)

    def _prefetch(self, tp, room, offsets, client):
        read = 0
        outcome = "done"
        try:
            budget = self.config.scrollback_scan_records
            while offsets and read < budget:
                with self._one_at_a_time(room):  # one run, then pages waiting for the room go first
                    if self._busy():
                        outcome = "busy"  # pages come first: the next page reads what is left
                        return
                    _, run_read, stopped = self._fetch(tp, offsets, budget - read, deadline=0, page=False)
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
            self._prefetching.discard(room)
            metrics.SCROLLBACK_PREFETCH.labels(outcome).inc()
            try:
                self._charge(client, read)
            except Exception:
                log.warning("charging a read ahead to its client failed", exc_info=True)

    def _busy(self):
        """No Kafka consumer free now, or a read waits for one."""
        return self._waiting > 0 or (self._idle.empty() and self._created >= self.config.scrollback_readers)

    def _scan(self, tp, room, high, beginning, count, budget, result, deadline):
        """Walk the partition backwards from ``high``, keeping the room's messages, until
        ``count`` are found, the log's beginning, or the page's budget of records or time."""
        with self._consumer(tp) as consumer:
            self._scan_with(consumer, tp, room, high, beginning, count, budget, result, deadline)

    def _scan_with(self, consumer, tp, room, high, beginning, count, budget, result, deadline):
        key = room.encode()
        budget -= result.records
        read = 0
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
                    records = self._poll(consumer, tp, high - low)
                    for record in records:
                        if record.offset >= high:
                            break
                        read += 1
                        if record.key == key:
                            chunk.append(record)
                    if not records or records[-1].offset + 1 >= high:
                        break
                chunk = [m for m in map(_message, chunk) if m is not None]
                result.messages.extend(reversed(self._shown(room, chunk)))
                high = low
                gevent.sleep(0)  # let the worker's live streams run between chunks
        finally:
            consumer.pause(tp)
            metrics.SCROLLBACK_RECORDS.labels("scan").inc(read)
            result.records += read

    @staticmethod
    def _poll(consumer, tp, max_records=SCAN_CHUNK):
        records = consumer.poll(timeout_ms=1000, max_records=max_records).get(tp, [])
        if not records and consumer.position(tp) < consumer.end_offsets([tp])[tp]:
            records = consumer.poll(timeout_ms=1000, max_records=max_records).get(tp, [])
        return records

    def _beginning(self, tp):
        offset, read_at = self._beginnings.get(tp.partition, (None, 0.0))
        if offset is None or time.monotonic() - read_at > BEGINNING_TTL_S:
            with self._consumer(tp) as consumer:
                offset = consumer.beginning_offsets([tp])[tp]
            self._beginnings[tp.partition] = (offset, time.monotonic())
        return offset

    def _shown(self, room, messages):
        """Drop what a reader must not see: messages taken back (the log still holds them;
        their tombstones follow; a page through the index had them dropped by its lookup),
        and retried copies (``_firsts``)."""
        if messages:
            gone = self.redis.smismember(deleted_key(room), [m.id for m in messages])
            messages = [m for m, deleted in zip(messages, gone, strict=True) if not deleted]
        return self._firsts(room, messages)

    def _firsts(self, room, messages):
        """Drop retried copies (a client_id whose first message has another id): a round
        trip only if some message has a client_id."""
        with_cid = [m for m in messages if m.client_id]
        if with_cid:
            firsts = self.redis.mget([client_id_key(room, m.client_id) for m in with_cid])
            duplicate = {
                message.id for message, first in zip(with_cid, firsts, strict=True)
                if first is not None and Message.from_stored(first).id != message.id
            }
            messages = [m for m in messages if m.id not in duplicate]
        return [(m.to_json(), int(m.id)) for m in messages]

    # -- bounds ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _one_at_a_time(self, room):
        """Pages of one room read the log one at a time in a worker: members scrolling up
        together wait for the first to read what they all want, then find it in the cache."""
        entry = self._rooms_reading.setdefault(room, [Semaphore(), 0])
        entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._rooms_reading[room]

    @contextlib.contextmanager
    def _consumer(self, tp):
        """One of this worker's Kafka consumers, assigned to ``tp``, for one read."""
        with self._reader() as consumer:
            if consumer.assignment() != {tp}:
                consumer.assign([tp])
                consumer.pause(tp)
            yield consumer

    @contextlib.contextmanager
    def _reader(self):
        """One of this worker's Kafka consumers, for one read."""
        try:
            consumer = self._idle.get_nowait()
        except Empty:
            if self._created < self.config.scrollback_readers:
                self._created += 1
                try:
                    consumer = self._new_consumer()
                except BaseException:
                    self._created -= 1
                    raise
            else:
                self._waiting += 1
                try:
                    consumer = self._idle.get(timeout=self.config.scrollback_wait_s)
                except Empty:
                    metrics.SCROLLBACK_REFUSED.labels("busy").inc()
                    raise Busy() from None
                finally:
                    self._waiting -= 1
        try:
            yield consumer
        except KafkaError:
            self._created -= 1  # its state is unknown: a new one next time
            try:
                consumer.close()
            except Exception:
                log.exception("closing a scrollback consumer failed")
            raise
        except BaseException:
            self._idle.put(consumer)
            raise
        self._idle.put(consumer)

    def close(self):
        """Close the Kafka consumers not in use."""
        while not self._idle.empty():
            self._idle.get_nowait().close()
            self._created -= 1

    def _new_consumer(self):
        return log_reader(
            self.config.kafka_bootstrap_servers, "chat-stream-history",
            auto_offset_reset="earliest",  # a record retention removed meanwhile: read on from the beginning
            fetch_max_wait_ms=0,  # what the log holds now; never wait for more
            max_partition_fetch_bytes=8192,  # a few records past the one sought (a whole batch at least)
        )

    def _client_key(self, client):
        return f"chat:ratelimit:scrollback:{client or 'unknown'}"

    def _charge(self, client, records):
        if records:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incrby(self._client_key(client), records)
            pipe.expire(self._client_key(client), self.config.scrollback_client_window_s, nx=True)
            pipe.execute()
