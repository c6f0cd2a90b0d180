"""Fixtures the integration tests share (the stack itself is tests/conftest.py's)."""

import pytest
from kafka import KafkaConsumer, TopicPartition


@pytest.fixture(scope="module")
def end_offsets(stack):
    """The topic's end offsets, read on demand: a refused request must leave them unchanged."""
    consumer = KafkaConsumer(bootstrap_servers=stack.settings.kafka_bootstrap)
    partitions = [TopicPartition("chat.messages", p) for p in consumer.partitions_for_topic("chat.messages")]
    yield lambda: consumer.end_offsets(partitions)
    consumer.close()
