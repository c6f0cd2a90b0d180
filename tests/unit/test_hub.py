"""The stream hub's per-client buffer: bounded, and a client that falls behind is cut off."""

from stream import metrics
from stream.hub import CLOSE, Client


def test_a_client_that_cannot_keep_up_is_cut_off_after_its_buffer():
    client = Client("lobby", queue_size=3)
    cut_before = metrics.CUT_OFF._value.get()
    for i in range(3):
        client.offer((b"frame", i, None, 0.0))
    assert client.closed is None
    client.offer((b"frame", 3, None, 0.0))  # the fourth does not fit
    assert client.closed == "slow"
    assert client.queue.qsize() == 3  # memory stays bounded: nothing more was queued
    assert metrics.CUT_OFF._value.get() == cut_before + 1


def test_closing_wakes_the_writer_with_a_sentinel():
    client = Client("lobby", queue_size=3)
    client.close("drain")
    assert client.queue.get_nowait() is CLOSE
    client.close("slow")  # a second close keeps the first reason
    assert client.closed == "drain"
