"""After a failed batch the bridge reads it again from the group's last commit. Asking the
group for its commits must not hang: during a rebalance the coordinator answers only once
this member polls again, and a bridge waiting for it without a bound stayed outside its
group for good (unready, its partitions with the others or with nobody)."""

from kafka import TopicPartition
from kafka.errors import KafkaTimeoutError

from bridge.config import Config
from bridge.consumer import COMMITTED_TIMEOUT_MS, Bridge

TP = TopicPartition("chat.messages", 3)


class Consumer:
    """The few calls the rewind makes, recorded; ``committed`` answers with ``answer``."""

    def __init__(self, answer):
        self.answer = answer
        self.seeks, self.closed, self.timeouts = [], False, []

    def assignment(self):
        return {TP}

    def committed(self, tp, timeout_ms=None):
        self.timeouts.append(timeout_ms)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def seek(self, tp, offset):
        self.seeks.append((tp, offset))

    def seek_to_beginning(self, tp):
        self.seeks.append((tp, "beginning"))

    def close(self):
        self.closed = True


def bridge_with(consumer):
    bridge = Bridge(Config.from_env())
    bridge.consumer = consumer
    return bridge


def test_a_failed_batch_is_read_again_from_the_last_commit():
    consumer = Consumer(41)
    bridge = bridge_with(consumer)
    bridge._rewind_to_committed()
    assert consumer.seeks == [(TP, 41)] and bridge.consumer is consumer
    assert consumer.timeouts == [COMMITTED_TIMEOUT_MS]  # never an unbounded wait


def test_without_an_answer_from_the_group_the_bridge_reconnects_instead_of_waiting():
    consumer = Consumer(KafkaTimeoutError("no answer during a rebalance"))
    bridge = bridge_with(consumer)
    bridge._rewind_to_committed()
    assert consumer.closed and bridge.consumer is None  # the run loop connects a new one, from the commits
