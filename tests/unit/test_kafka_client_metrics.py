"""INGEST_KAFKA_CLIENT_METRICS=true: kafka-python's own producer metrics (how many records
shared a produce request) are on ingest's /metrics; off (the default), the client records none."""

from prometheus_client import REGISTRY

from ingest import producer as producer_module
from ingest.config import Config
from ingest.producer import Producer


class ClientWithMetrics:
    """What kafka-python's ``KafkaProducer.metrics()`` returns, and nothing else of it."""

    def metrics(self):
        return {"producer-metrics": {"records-per-request-avg": 3.5, "request-latency-avg": 12.0,
                                     "record-queue-time-avg": float("nan"), "batch-size-avg": 420.0,
                                     "record-send-rate": 180.0}}


def sample(metric):
    return REGISTRY.get_sample_value("chat_ingest_kafka_client", {"metric": metric})


def test_the_client_records_its_metrics_only_when_asked(monkeypatch):
    monkeypatch.delenv("INGEST_KAFKA_CLIENT_METRICS", raising=False)
    assert producer_module.settings(Config.from_env())["metrics_enabled"] is False
    monkeypatch.setenv("INGEST_KAFKA_CLIENT_METRICS", "true")
    assert producer_module.settings(Config.from_env())["metrics_enabled"] is True


def test_records_per_request_are_copied_into_ingests_metrics(monkeypatch):
    monkeypatch.delenv("INGEST_KAFKA_CLIENT_METRICS", raising=False)  # no reporting thread of its own
    producer = Producer(Config.from_env())
    producer._producer = ClientWithMetrics()
    producer.copy_client_metrics()
    assert sample("records-per-request-avg") == 3.5
    assert sample("request-latency-avg") == 12.0
    assert sample("record-queue-time-avg") is None  # the client has no sample of it yet
