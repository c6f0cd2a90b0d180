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
