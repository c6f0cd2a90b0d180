"""The stream worker's cache of messages read from the log (bounded, least recently used out
first), and how a page reads around it: what the cache holds is not read again, a page that
ran out of time answers nothing below its cursor, and a page the cache holds whole waits for
no other page of its room. Kafka is a stand-in partition here."""

import contextlib
import time
from types import SimpleNamespace

from kafka import TopicPartition

from chat_common.messages import Message, pack_offsets
from stream.scrollback import MessageCache, Scrollback
from stream.scrollback.records import RecordReader
from stream.scrollback.shown import first_id

TP = TopicPartition("t", 0)


def test_the_cache_keeps_the_most_recently_used_messages_up_to_its_size():
    cache = MessageCache(2)
    cache.put(0, 10, "a")
    cache.put(0, 11, "b")
    assert cache.get(0, 10) == "a"  # now the most recently used
    cache.put(1, 10, "c")  # a different partition, same offset: another record
    assert cache.get(0, 11) is None  # the least recently used went
    assert (cache.get(0, 10), cache.get(1, 10)) == ("a", "c")


def test_a_cache_of_size_zero_keeps_nothing_and_records_that_are_not_messages_are_not_kept():
    off = MessageCache(0)
    off.put(0, 1, "a")
    assert off.get(0, 1) is None
    cache = MessageCache(5)
    cache.put(0, 1, None)
    assert cache.get(0, 1) is None


class _Record:
    def __init__(self, offset, value):
        self.offset, self.value, self.key = offset, value, b"r"


class _Log:
    """A partition as a KafkaConsumer paused on it shows it: seek, then poll from there."""

    def __init__(self, offsets):
        self.records = {o: _Record(o, _message(o).kafka_value()) for o in offsets}
        self.end = max(offsets) + 1
        self.pos = 0

    def seek(self, tp, offset):
        self.pos = offset

    def poll(self, timeout_ms, max_records):
        taken = [self.records[o] for o in range(self.pos, self.end) if o in self.records][:max_records]
        if taken:
            self.pos = taken[-1].offset + 1
        return {TP: taken}

    def position(self, tp):
        return self.pos

    def end_offsets(self, tps):
        return {tp: self.end for tp in tps}

    def resume(self, tp):
        pass

    def pause(self, tp):
        pass


class _Readers:
    """A ReaderPool of one consumer over ``log`` (None: any read fails the test)."""

    def __init__(self, log=None):
        self.log = log

    @contextlib.contextmanager
    def consumer(self, tp):
        assert self.log is not None, "a page the cache holds whole reads no record"
        yield self.log

    def beginning(self, tp):
        return 0

    def known_beginning(self, partition):
        return 0

    def busy(self):
        return False

    def close(self):
        pass


def _message(offset):
    return Message(room="r", user="u", text=f"m{offset}", ts=1)


def _cached(cache, offsets):
    for offset in offsets:
        cache.put(0, offset, Message.from_kafka(_message(offset).kafka_value(), offset))


def _reader(offsets, cached):
    """A RecordReader over ``_Log(offsets)``, with the records at ``cached`` in its cache."""
    cache = MessageCache(100)
    _cached(cache, cached)
    return RecordReader(_Readers(_Log(offsets)), cache)


def test_a_page_that_stops_for_time_answers_nothing_below_its_cursor_even_from_the_cache():
    """Offsets 10 (cached), 500 and 1000 wanted, and no time left after the first run: the
    page answers 1000 only, with the cursor above 500; 10 comes in its place, pages later."""
    reader = _reader([10, 500, 1000], cached=[10])
    messages, read, cursor = reader.fetch(TP, [10, 500, 1000], budget=10_000, deadline=time.monotonic() - 1)
    assert [m.id for m in messages] == ["1000"]
    assert cursor == 501 and read == 1


def test_a_page_whose_time_went_waiting_for_its_room_answers_what_the_cache_holds_without_reading():
    """Offsets 500 and 1000 wanted, 1000 cached (the page before it, or the read ahead, put
    it there), no time left: the page answers 1000 without reading, its cursor above 500;
    with time left it reads 500 as well, and the next page finds it cached."""
    reader = _reader([500, 1000], cached=[1000])
    messages, read, cursor = reader.fetch(TP, [500, 1000], budget=10_000, deadline=time.monotonic() - 1)
    assert ([m.id for m in messages], read, cursor) == (["1000"], 0, 501)
    messages, read, cursor = reader.fetch(TP, [500, 1000], budget=10_000, deadline=time.monotonic() + 60)
    assert ([m.id for m in messages], read, cursor) == (["500", "1000"], 1, None)
    messages, read, cursor = reader.fetch(TP, [500, 1000], budget=10_000, deadline=time.monotonic() + 60)
    assert ([m.id for m in messages], read, cursor) == (["500", "1000"], 0, None)


class _Redis:
    """A Redis whose only script answers ``lookup`` (a narrow stand-in: no client_id, nothing
    to charge)."""

    def __init__(self, lookup):
        self.lookup = lookup

    def register_script(self, script):
        return lambda keys, args: self.lookup


def test_a_page_the_cache_holds_whole_does_not_wait_while_another_page_of_its_room_reads_the_log():
    """Readers past the cold part of a room's past are not held up by one still reading it:
    with the room's turn taken (another page reading Kafka), a page whose messages are all
    cached is answered (waiting for the turn here would block forever: gevent raises)."""
    config = SimpleNamespace(kafka_topic="t", scrollback_cache_messages=100, scrollback_scan_records=10_000,
                             scrollback_client_records=1000, scrollback_client_window_s=60, scrollback_page_ms=60_000,
                             scrollback_prefetch=True)
    # The index: 500 and 1000 below 2000, indexed from 0, nothing older, nothing ahead.
    lookup = (pack_offsets([500, 1000]), b"0", pack_offsets([500]), 1, 0, b"", 0)
    scrollback = Scrollback(_Redis(lookup), config, readers=_Readers())
    _cached(scrollback.cache, [500, 1000])
    with scrollback.turns.turn("r"):  # another page of the room holds its turn
        older = scrollback.older("r", 0, 2000, 2, "client")
    assert [i for _, i in older.messages] == [1000, 500] and older.records == 0


def test_a_client_ids_first_message_is_read_from_its_id_or_from_the_json_stored_before():
    assert first_id(b"1234") == "1234"  # the key holds the first message's id
    assert first_id(b'{"id":"77","room":"r","user":"u","text":"t","ts":1,"client_id":"c"}') == "77"  # as before
    assert first_id(b"not json") is None and first_id(b"[1]") is None  # neither: the message is shown
