"""The stream hub's per-client buffer: bounded, and a client that falls behind is cut off."""

from stream import metrics
from stream.app import _observe_delivery
from stream.hub import CLOSE, Client, Item


def test_a_client_that_cannot_keep_up_is_cut_off_after_its_buffer():
    client = Client("lobby", queue_size=3)
    cut_before = metrics.CUT_OFF._value.get()
    for i in range(3):
        client.offer(Item(b"frame", i, None, 0.0))
    assert client.closed is None
    client.offer(Item(b"frame", 3, None, 0.0))  # the fourth does not fit
    assert client.closed == "slow"
    assert client.queue.qsize() == 3  # memory stays bounded: nothing more was queued
    assert metrics.CUT_OFF._value.get() == cut_before + 1


def test_closing_wakes_the_writer_with_a_sentinel():
    client = Client("lobby", queue_size=3)
    client.close("drain")
    assert client.queue.get_nowait() is CLOSE
    client.close("slow")  # a second close keeps the first reason
    assert client.closed == "drain"


def test_latency_is_recorded_once_per_message_when_its_last_local_reader_got_it():
    item = Item(b"frame", 7, ts=None, received_at=0.0, pending=3)
    before = _count(metrics.FANOUT_SECONDS)
    for _ in range(2):
        item.pending -= 1
        _observe_delivery([item])
    assert _count(metrics.FANOUT_SECONDS) == before  # two of three readers: not yet
    item.pending -= 1
    _observe_delivery([item])
    assert _count(metrics.FANOUT_SECONDS) == before + 1


def _count(histogram):
    return sum(sample.value for sample in histogram.collect()[0].samples if sample.name.endswith("_count"))
