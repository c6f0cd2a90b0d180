"""A plain reader of the chat topic, outside any consumer group: what every hop that reads
the log at given offsets uses (ingest checking who may delete a message, the bridge's
indexer, the stream's scrollback). The consume loop of the bridge has its own settings."""

from kafka import KafkaConsumer

from chat_common.kafka_clients import build


def log_reader(bootstrap_servers: str, client_id: str, **settings: object) -> KafkaConsumer:
    """A KafkaConsumer that commits nothing and is back within a second of a broker's
    return; ``settings`` add to or override those."""
    return build(
        KafkaConsumer,
        bootstrap_servers=bootstrap_servers.split(","),
        client_id=client_id,
        group_id=None,
        enable_auto_commit=False,
        reconnect_backoff_max_ms=1000,  # the default backs off to 30 s after a broker restart
        metrics_enabled=False,  # never read; recording costs CPU per fetch
        **settings,
    )
