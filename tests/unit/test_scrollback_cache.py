"""The stream worker's cache of messages read from the log: bounded, least recently used out first."""

from stream.scrollback import MessageCache


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
        from chat_common.messages import Message

        self.records = {o: _Record(o, Message(room="r", user="u", text=f"m{o}", ts=1).kafka_value()) for o in offsets}
        self.end = max(offsets) + 1
        self.pos = 0

    def seek(self, tp, offset):
        self.pos = offset

    def poll(self, timeout_ms, max_records):
        taken = [self.records[o] for o in range(self.pos, self.end) if o in self.records][:max_records]
        if taken:
            self.pos = taken[-1].offset + 1
        return {self.tp: taken}

    def position(self, tp):
        return self.pos

    def end_offsets(self, tps):
        return {tp: self.end for tp in tps}

    def resume(self, tp):
        pass

    def pause(self, tp):
        pass


def _paged(offsets, cached):
    """A Scrollback of one worker over ``_Log(offsets)`` (its only consumer), partition 0,
    with the records at ``cached`` in its cache already: (the scrollback, its partition)."""
    import contextlib
    from types import SimpleNamespace

    from kafka import TopicPartition

    from chat_common.messages import Message
    from stream.scrollback import Scrollback

    log = _Log(offsets)
    log.tp = TopicPartition("t", 0)

    class Paged(Scrollback):
        @contextlib.contextmanager
        def _consumer(self, tp):
            yield log

    config = SimpleNamespace(kafka_topic="t", scrollback_cache_messages=100)
    scrollback = Paged(SimpleNamespace(register_script=lambda script: None), config)
    for offset in cached:
        scrollback._cache.put(0, offset, Message.from_kafka(log.records[offset].value, offset))
    return scrollback, log.tp


def test_a_page_that_stops_for_time_answers_nothing_below_its_cursor_even_from_the_cache():
    """Offsets 10 (cached), 500 and 1000 wanted, and no time left after the first run: the
    page answers 1000 only, with the cursor above 500; 10 comes in its place, pages later."""
    import time

    scrollback, tp = _paged([10, 500, 1000], cached=[10])
    messages, read, cursor = scrollback._fetch(tp, [10, 500, 1000], budget=10_000, deadline=time.monotonic() - 1)
    assert [m.id for m in messages] == ["1000"]
    assert cursor == 501 and read == 1


def test_a_page_whose_time_went_waiting_for_its_room_answers_what_the_cache_holds_without_reading():
    """Offsets 500 and 1000 wanted, 1000 cached (the page before it, or the read ahead, put
    it there), no time left: the page answers 1000 without reading, its cursor above 500;
    with time left it reads 500 as well."""
    import time

    scrollback, tp = _paged([500, 1000], cached=[1000])
    messages, read, cursor = scrollback._fetch(tp, [500, 1000], budget=10_000, deadline=time.monotonic() - 1)
    assert ([m.id for m in messages], read, cursor) == (["1000"], 0, 501)
    messages, read, cursor = scrollback._fetch(tp, [500, 1000], budget=10_000, deadline=time.monotonic() + 60)
    assert ([m.id for m in messages], read, cursor) == (["500", "1000"], 1, None)


def test_a_page_the_cache_holds_whole_does_not_wait_while_another_page_of_its_room_reads_the_log():
    """Readers past the cold part of a room's past are not held up by one still reading it:
    with the room's page lock taken (another page reading Kafka), a page whose messages are
    all cached is answered (waiting for the lock here would block forever: gevent raises)."""
    import time
    from types import SimpleNamespace

    from kafka import TopicPartition

    from chat_common.messages import Message, pack_offsets
    from stream.scrollback import Older, Scrollback

    class Cached(Scrollback):
        def _beginning(self, tp):
            return 0

        def _firsts(self, room, messages):
            return [(m.to_json(), int(m.id)) for m in messages]

        def _consumer(self, tp):
            raise AssertionError("a page the cache holds whole reads no record")

    config = SimpleNamespace(kafka_topic="t", scrollback_cache_messages=100, scrollback_scan_records=10_000,
                             scrollback_client_records=1000)
    scrollback = Cached(SimpleNamespace(register_script=lambda script: None), config)
    # The index: 500 and 1000 below 2000, indexed from 0, nothing older, nothing ahead.
    scrollback._lookup = lambda keys, args: (pack_offsets([500, 1000]), b"0", pack_offsets([500]), 1, 0, b"", 0)
    for offset in (500, 1000):
        value = Message(room="r", user="u", text=f"m{offset}", ts=1).kafka_value()
        scrollback._cache.put(0, offset, Message.from_kafka(value, offset))
    result = Older([])
    with scrollback._one_at_a_time("r"):  # another page of the room holds its lock
        scrollback._read(TopicPartition("t", 0), "r", 2000, 2, result, time.monotonic() + 60, "client", 2)
    assert [i for _, i in result.messages] == [1000, 500] and result.records == 0
