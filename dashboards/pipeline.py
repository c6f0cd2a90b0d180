"""The Grafana dashboard *Chatroom / Pipeline*, as code: Grafana's typed builders
(grafana-foundation-sdk) check its structure against Grafana's own schema, and
``python -m dashboards`` writes it to helm/chatroom/files/dashboards/chatroom-pipeline.json,
the file the chart ships (a test fails when the two differ).

Rows: end to end, then one per hop (ingest, bridge, stream). Every query reads one
``chatroom-<hop>`` job (docs/metrics.md) in the ``$namespace`` chosen, over
``$__rate_interval``; counters and histograms are summed over pods (several per hop in a
cluster), and the panels that say "per pod" break a gauge down by the ``pod`` label.
"""

from collections.abc import Callable, Sequence

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as Stat
from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
from grafana_foundation_sdk.cog import variants
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dashboard_model
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

UID = "chatroom-pipeline"
FILE_NAME = "chatroom-pipeline.json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
HEIGHT = 8
QUANTILES = (0.5, 0.95, 0.99)

PanelBuilder = Builder[dashboard_model.Panel]  # what a row takes: a time series, a stat, ...


# -- queries ----------------------------------------------------------------------------------


def series(metric: str, hop: str, *matchers: str) -> str:
    """``metric{job="chatroom-<hop>",namespace=~"$namespace",<matchers>}``."""
    every = (f'job="chatroom-{hop}"', 'namespace=~"$namespace"') + matchers
    return metric + "{" + ",".join(every) + "}"


def rate(metric: str, hop: str, *matchers: str) -> str:
    return f"rate({series(metric, hop, *matchers)}[$__rate_interval])"


def increase(metric: str, hop: str, *matchers: str) -> str:
    return f"increase({series(metric, hop, *matchers)}[$__rate_interval])"


def summed(expr: str, by: str | None = None) -> str:
    """``expr`` summed over every pod (and series), or kept apart ``by`` a label."""
    return f"sum by ({by}) ({expr})" if by else f"sum({expr})"


def max_by_partition(expr: str) -> str:
    """One value per partition: the bridge that owns a partition reports its lag, any bridge
    that lost it reports 0."""
    return f"max by (partition) ({expr})"


def quantile(q: float, histogram: str, hop: str, *matchers: str, by: tuple[str, ...] = ()) -> str:
    """The ``q`` quantile of a histogram over every pod (``by``: kept apart)."""
    return f"histogram_quantile({q}, {summed(rate(histogram + '_bucket', hop, *matchers), by=', '.join(('le',) + by))})"


def target(expr: str, legend: str) -> Dataquery:
    return Dataquery().datasource(DATASOURCE).expr(expr).legend_format(legend).range()


def lettered(targets: Sequence[Dataquery]) -> list[Builder[variants.Dataquery]]:
    """The targets with their reference ids A, B, C, ... in order."""
    return [query.ref_id(chr(ord("A") + number)) for number, query in enumerate(targets)]


def quantile_targets(histogram: str, hop: str, *matchers: str,
                     quantiles: Sequence[float] = QUANTILES) -> list[Dataquery]:
    return [target(quantile(q, histogram, hop, *matchers), f"p{round(q * 100)}") for q in quantiles]


# -- panels -----------------------------------------------------------------------------------


def thresholds(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    """Threshold steps (value, colour), the first from minus infinity (value None)."""
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(
        [Threshold(color=color, value=value) for value, color in steps])


def timeseries(title: str, description: str, unit: str, targets: Sequence[Dataquery], *,
               limit: float | None = None, width: int = 8) -> Timeseries:
    """A line chart from 0; ``limit``: a red threshold line at that value."""
    panel = (
        Timeseries()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .height(HEIGHT)
        .span(width)
        .unit(unit)
        .min(0)
        .draw_style(common.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(common_builders.VizLegendOptions()
                .display_mode(common.LegendDisplayMode.LIST)
                .placement(common.LegendPlacement.BOTTOM)
                .show_legend(True))
        .tooltip(common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.NONE))
        .targets(lettered(targets))
    )
    if limit is None:
        return panel.thresholds(thresholds((None, "green")))
    return (panel.thresholds(thresholds((None, "green"), (limit, "red")))
            .thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.LINE)))


def hops_up() -> Stat:
    return (
        Stat()
        .title("Hops up")
        .description("Targets that answer their /metrics scrape, per hop. 0 means that hop is gone.")
        .datasource(DATASOURCE)
        .height(HEIGHT)
        .span(8)
        .unit("short")
        .thresholds(thresholds((None, "red"), (1, "green")))
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .orientation(common.VizOrientation.AUTO)
        .justify_mode(common.BigValueJustifyMode.AUTO)
        .with_target(target('sum by (job) (up{job=~"chatroom-(ingest|bridge|stream)",namespace=~"$namespace"})',
                            "{{job}}").ref_id("A"))
    )


def end_to_end() -> list[PanelBuilder]:
    return [
        timeseries(
            "Delivery latency p50 / p95 / p99",
            "From a message's ts (stamped by ingest) to its write on a client's socket, over every live "
            "delivery (one per client per message). The objective: p99 at most 250 ms (the red line).",
            "s", quantile_targets("chat_delivery_latency_seconds", "stream"), limit=0.25),
        timeseries(
            "Throughput through each hop",
            "Messages per second at each hop: acknowledged by Kafka (ingest), read from Kafka (bridge), "
            "published live to Redis (bridge), written to clients (stream; one per client, so it exceeds "
            "the others when rooms have several readers).",
            "cps", [
                target(summed(rate("chat_ingest_messages_total", "ingest")), "accepted (ingest)"),
                target(summed(rate("chat_bridge_messages_consumed_total", "bridge")), "consumed (bridge)"),
                target(summed(rate("chat_bridge_messages_applied_total", "bridge", 'outcome="written"')),
                       "published live (bridge)"),
                target(summed(rate("chat_delivery_latency_seconds_count", "stream")), "delivered to clients (stream)"),
            ]),
        timeseries(
            "Deliveries slower than 250 ms (SLO: at most 1%)",
            "Share of live deliveries over the 250 ms objective. Sustained above 1% eats the error budget; "
            "the burn-rate alerts watch the same ratio over 5 m / 1 h and 30 m / 6 h.",
            "percentunit", [target(
                "1 - " + summed(rate("chat_delivery_latency_seconds_bucket", "stream", 'le="0.25"'))
                + " / " + summed(rate("chat_delivery_latency_seconds_count", "stream")), "over 250 ms")],
            limit=0.01),
        timeseries(
            "Open SSE connections",
            "Browsers connected to stream right now, over every stream pod.",
            "short", [target(summed(series("chat_stream_connections", "stream")), "open connections")]),
        timeseries(
            "Consumer lag (records behind)",
            "Records written to the chat topic that the bridge has not applied yet, summed over partitions. "
            "Near 0 when healthy; a rising line means messages reach rooms later and later.",
            "short", [target(summed(max_by_partition(series("chat_bridge_consumer_lag", "bridge"))),
                             "records behind")]),
        hops_up(),
    ]


def ingest() -> list[PanelBuilder]:
    post = 'route="/api/rooms/<room>/messages"'
    return [
        timeseries(
            "POST answers by status",
            "Answers to POST /api/rooms/<room>/messages per second, by HTTP status: 201 stored, 4xx refused "
            "input or rate limit, 503 Kafka unavailable.",
            "reqps", [target(summed(rate("chat_http_requests_total", "ingest", 'method="POST"'), by="status"),
                             "{{status}}")]),
        timeseries(
            "POST latency p50 / p95 / p99",
            "Time to answer a POST, including the wait for Kafka's acknowledgement.",
            "s", quantile_targets("chat_http_request_duration_seconds", "ingest", post)),
        timeseries(
            "Server errors among POSTs",
            "Share of POSTs answered 5xx. The ChatIngestErrorRatioHigh alert fires above 5% for 5 minutes.",
            "percentunit", [target(
                summed(rate("chat_http_requests_total", "ingest", 'method="POST"', 'status=~"5.."'))
                + " / " + summed(rate("chat_http_requests_total", "ingest", 'method="POST"')), "5xx share")],
            limit=0.05),
        timeseries(
            "Kafka produce latency p50 / p95 / p99",
            "From handing a record to the producer to Kafka's acknowledgement by all in-sync replicas.",
            "s", quantile_targets("chat_ingest_produce_duration_seconds", "ingest")),
        timeseries(
            "Kafka produce failures by error",
            "Records Kafka did not acknowledge in time, by exception; each one is a 503 for its sender.",
            "cps", [target(summed(rate("chat_ingest_produce_errors_total", "ingest"), by="error"), "{{error}}")]),
        timeseries(
            "Refused before producing, by reason",
            "Requests refused by validation or rate limits (by error code), and retries answered with the "
            "stored message (client_id seen before).",
            "reqps", [
                target(summed(rate("chat_ingest_rejected_total", "ingest"), by="reason"), "{{reason}}"),
                target(summed(rate("chat_ingest_replayed_total", "ingest")), "replayed retry"),
            ]),
        timeseries(
            "Rate limits",
            "Requests refused by a rate limit or budget, by scope (user, ip, ip_bytes, ip_day, ...), and "
            "requests refused with 503 because Redis did not answer the budget or held-name check (never "
            "let through unchecked).",
            "reqps", [
                target(summed(rate("chat_ingest_rate_limited_total", "ingest"), by="scope"), "limited: {{scope}}"),
                target(summed(rate("chat_ingest_rate_limit_errors_total", "ingest")), "503: budget check (Redis)"),
                target(summed(rate("chat_ingest_name_check_errors_total", "ingest")), "503: name check (Redis)"),
            ]),
        timeseries(
            "Admission calls per Redis round trip",
            "The Redis check each request makes before it is produced (retries, held names, budgets): calls "
            "made while one round trip is under way share the next (at most 128), so under load this rises "
            "above 1. One Redis node only: in cluster mode each call goes alone.",
            "none", [target(summed(rate("chat_ingest_admission_calls_total", "ingest")) + " / "
                            + summed(rate("chat_ingest_admission_round_trips_total", "ingest")),
                            "calls per round trip")]),
        timeseries(
            "Deletes and typing signals",
            "Deletes acknowledged by Kafka (a tombstone each), deletes of an already deleted message (204, "
            "nothing written), and typing signals published to readers (never stored). Their refusals are "
            "under \"Refused before producing\".",
            "ops", [
                target(summed(rate("chat_ingest_deletes_total", "ingest")), "deletes"),
                target(summed(rate("chat_ingest_delete_repeats_total", "ingest")), "repeated deletes"),
                target(summed(rate("chat_ingest_typing_total", "ingest")), "typing signals"),
            ]),
        timeseries(
            "Edits, reactions and replies",
            "Changes to messages acknowledged by Kafka, by kind (edit, reaction added or taken back, reply: a "
            "post quoting another), and repeats answered without writing (the same text, a reaction already "
            "there or gone). Their refusals are under \"Refused before producing\".",
            "ops", [
                target(summed(rate("chat_ingest_changes_total", "ingest"), by="kind"), "{{kind}}"),
                target(summed(rate("chat_ingest_change_repeats_total", "ingest"), by="kind"), "repeated: {{kind}}"),
            ]),
        timeseries(
            "Messages accepted per pod",
            "Messages acknowledged by Kafka and answered 201, per ingest pod: the Service spreads POSTs "
            "over the pods, so the lines should stay close; one at 0 while others carry the load is a pod "
            "that gets no traffic or cannot produce.",
            "cps", [target(summed(rate("chat_ingest_messages_total", "ingest"), by="pod"), "{{pod}}")]),
    ]


def bridge() -> list[PanelBuilder]:
    return [
        timeseries(
            "Records consumed and applied, by outcome",
            "Records read from Kafka, and what applying them did: written (history + live), rebuilt "
            "(history only), replayed or duplicate (skipped, already there), invalid.",
            "cps", [
                target(summed(rate("chat_bridge_messages_consumed_total", "bridge")), "consumed"),
                target(summed(rate("chat_bridge_messages_applied_total", "bridge"), by="outcome"), "{{outcome}}"),
            ]),
        timeseries(
            "Consumer lag by partition",
            "Records behind each partition's end as of the bridge's last fetch (the highest report per "
            "partition).",
            "short", [target(max_by_partition(series("chat_bridge_consumer_lag", "bridge")),
                             "partition {{partition}}")]),
        timeseries(
            "Kafka → Redis latency p50 / p95 / p99",
            "From a record's Kafka timestamp to its publication in Redis: the bridge's share of the delivery "
            "latency.",
            "s", quantile_targets("chat_bridge_kafka_to_redis_seconds", "bridge")),
        timeseries(
            "Batch apply + commit p50 / p99",
            "Time to apply one polled batch to Redis and commit its offsets.",
            "s", quantile_targets("chat_bridge_batch_duration_seconds", "bridge", quantiles=(0.5, 0.99))),
        timeseries(
            "Consume-loop errors by kind",
            "Failures of the consume loop (kafka, redis, other); each is retried from the last committed offset.",
            "cps", [target(summed(rate("chat_bridge_errors_total", "bridge"), by="kind"), "{{kind}}")]),
        timeseries(
            "Assigned partitions, rebalances, rebuilds",
            "Partitions each bridge consumes (0 everywhere: nobody consumes), and group rebalances and "
            "history rebuilds from Kafka in the interval.",
            "short", [
                target(summed(series("chat_bridge_assigned_partitions", "bridge"), by="pod"), "assigned: {{pod}}"),
                target(summed(increase("chat_bridge_rebalances_total", "bridge")), "rebalances"),
                target(summed(increase("chat_bridge_history_rebuilds_total", "bridge")), "history rebuilds"),
            ]),
        timeseries(
            "Tombstones applied, by outcome",
            "Tombstones (deleted messages) applied to Redis: written = the message left the history window "
            "and event: delete was published; rebuilt = re-applied from Kafka after Redis lost its data; "
            "replayed = applied before; duplicate = the message was already deleted.",
            "ops", [target(summed(rate("chat_bridge_deletes_applied_total", "bridge"), by="outcome"), "{{outcome}}")]),
        timeseries(
            "Edits and reactions applied, by kind and outcome",
            "Edit and reaction records applied to Redis: written = folded into the message and its event "
            "published; rebuilt = re-applied from Kafka after Redis lost its data; replayed = applied before; "
            "duplicate = its message was deleted, or the reaction was there (or gone) already.",
            "ops", [target(summed(rate("chat_bridge_changes_applied_total", "bridge"), by="kind, outcome"),
                           "{{kind}}: {{outcome}}")]),
        timeseries(
            "Redis memory used and maxmemory",
            "Memory Redis uses and its maxmemory, as the bridges read them (INFO memory, every 5 s). Under "
            "noeviction a full Redis refuses every write; ChatRedisMemoryHigh fires over 80% for 2 minutes. "
            "No maxmemory line: Redis has no limit.",
            "bytes", [
                target(f"max({series('chat_redis_used_memory_bytes', 'bridge')})", "used"),
                target(f"max({series('chat_redis_maxmemory_bytes', 'bridge')} > 0)", "maxmemory"),
            ]),
    ]


def stream() -> list[PanelBuilder]:
    not_metrics = 'route!="/metrics"'
    return [
        timeseries(
            "Open connections and subscribed rooms per pod",
            "Open SSE connections per stream pod, and rooms it holds a Redis subscription for.",
            "short", [
                target(summed(series("chat_stream_connections", "stream"), by="pod"), "connections: {{pod}}"),
                target(summed(series("chat_stream_subscribed_rooms", "stream"), by="pod"), "rooms: {{pod}}"),
            ]),
        timeseries(
            "Connects and disconnects",
            "SSE connections opened (fresh, resume, flask_sse) and ended (client, slow, drain, error) per second.",
            "cps", [
                target(summed(rate("chat_stream_connects_total", "stream"), by="kind"), "open: {{kind}}"),
                target(summed(rate("chat_stream_disconnects_total", "stream"), by="reason"), "closed: {{reason}}"),
            ]),
        timeseries(
            "Clients cut off (buffer full)",
            "Clients disconnected because they could not keep up; they reconnect and resume by id. The "
            "ChatStreamCutOffsRising alert fires above 10 in 10 minutes.",
            "short", [target(summed(increase("chat_stream_clients_cut_off_total", "stream")), "cut off")]),
        timeseries(
            "Fan-out latency p50 / p95 / p99",
            "From receiving an event from Redis to writing it on a client's socket: stream's share of the "
            "delivery latency.",
            "s", quantile_targets("chat_stream_fanout_seconds", "stream")),
        timeseries(
            "Live events: from Redis, to clients, dropped",
            "Events received from Redis pub/sub (once per pod), written to client sockets (once per client), "
            "and payloads refused as unsafe.",
            "cps", [
                target(summed(rate("chat_stream_live_received_total", "stream"), by="event"), "from Redis: {{event}}"),
                target(summed(rate("chat_stream_events_sent_total", "stream"), by="event"), "to clients: {{event}}"),
                target(summed(rate("chat_stream_live_dropped_total", "stream")), "dropped"),
            ]),
        timeseries(
            "Resumes, history reads, Redis reconnects",
            "Reconnects with a Last-Event-ID (exact: gap filled; reset: id left the window), history pages by "
            "source (redis, kafka for deep scrollback), and pub/sub reconnects.",
            "cps", [
                target(summed(rate("chat_stream_resumes_total", "stream"), by="outcome"), "resume: {{outcome}}"),
                target(summed(rate("chat_stream_history_reads_total", "stream"), by="source"), "history: {{source}}"),
                target(summed(rate("chat_stream_redis_reconnects_total", "stream")), "pub/sub reconnects"),
            ]),
        timeseries(
            "Deletes and typing fanned out",
            "Delete and typing events received from Redis pub/sub (once per stream worker with readers in "
            "the room) and written to client sockets (once per reader).",
            "ops", [
                target(summed(rate("chat_stream_live_received_total", "stream", 'event=~"delete|typing"'), by="event"),
                       "from Redis: {{event}}"),
                target(summed(rate("chat_stream_events_sent_total", "stream", 'event=~"delete|typing"'), by="event"),
                       "to clients: {{event}}"),
            ], width=12),
        timeseries(
            "Edits and reactions fanned out",
            "Edit and reaction events received from Redis pub/sub (once per stream worker with readers in "
            "the room) and written to client sockets (once per reader).",
            "ops", [
                target(summed(rate("chat_stream_live_received_total", "stream", 'event=~"edit|reaction"'), by="event"),
                       "from Redis: {{event}}"),
                target(summed(rate("chat_stream_events_sent_total", "stream", 'event=~"edit|reaction"'), by="event"),
                       "to clients: {{event}}"),
            ], width=12),
        timeseries(
            "Stream requests by route and status",
            "stream's HTTP answers per second (SSE connects count once, when they start).",
            "reqps", [target(summed(rate("chat_http_requests_total", "stream", not_metrics), by="route, status"),
                             "{{route}} {{status}}")],
            width=12),
        timeseries(
            "Time to first byte p99 by route",
            "Time to answer a stream request; for an SSE connect, until the stream starts (room subscription "
            "and history readiness; the history itself is written after).",
            "s", [target(quantile(0.99, "chat_http_request_duration_seconds", "stream", not_metrics, by=("route",)),
                         "{{route}}")],
            width=12),
    ]


def kafka() -> list[PanelBuilder]:
    """The broker's own metrics (the JMX exporter's agent: helm/kafka/files/metrics.yaml)."""
    p99 = series("kafka_network_requestmetrics_totaltimems", "kafka", 'quantile="0.99"')
    max_by_request = f"max by (request) ({p99})"
    return [
        timeseries(
            "Records into the broker",
            "Records appended by the brokers per second, every topic: the messages, tombstones and the "
            "consumer group's offset commits.",
            "cps", [target(summed(rate("kafka_server_brokertopicmetrics_messagesinpersec_total", "kafka")),
                           "records in")]),
        timeseries(
            "Bytes in and out of the broker",
            "Bytes the brokers take in (produce and replication) and send out (consumer fetches and "
            "replication) per second.",
            "Bps", [
                target(summed(rate("kafka_server_brokertopicmetrics_bytesinpersec_total", "kafka")), "in"),
                target(summed(rate("kafka_server_brokertopicmetrics_bytesoutpersec_total", "kafka")), "out"),
            ]),
        timeseries(
            "Partitions at risk",
            "Under-replicated (followers behind), under min.insync.replicas (acks=all produces fail) and "
            "offline (no leader) partitions: 0 when healthy. Alerts: ChatKafkaUnderReplicatedPartitions, "
            "ChatKafkaUnderMinIsr, ChatKafkaOfflinePartitions.",
            "short", [
                target(summed(series("kafka_server_replicamanager_underreplicatedpartitions", "kafka")),
                       "under-replicated"),
                target(summed(series("kafka_server_replicamanager_underminisrpartitioncount", "kafka")),
                       "under min ISR"),
                target(f"max({series('kafka_controller_kafkacontroller_offlinepartitionscount', 'kafka')})",
                       "offline"),
            ], limit=1),
        timeseries(
            "Request time in the broker p99",
            "Time a request spends in the broker, from arrival to the answer sent, 99th percentile over the "
            "broker's recent window: Produce (ingest's acks=all wait), FetchConsumer (the bridge), Fetch "
            "(followers).",
            "ms", [target(max_by_request, "{{request}}")]),
        timeseries(
            "Broker requests per record in",
            "Produce requests (ingest) and consumer fetches (the bridge and the history readers) the brokers "
            "answer per record appended. About 1 of each when messages come one at a time (every request "
            "carries one record), well under 1 under load, when requests carry several: the per-request "
            "cost of every hop (bench/README.md, the broker's cost per message).",
            "none", [target(summed(rate("kafka_network_requestmetrics_requests_total", "kafka",
                                        'request=~"Produce|FetchConsumer"'), by="request")
                            + " / ignoring(request) group_left "
                            + summed(rate("kafka_server_brokertopicmetrics_messagesinpersec_total", "kafka")),
                            "{{request}}")]),
        timeseries(
            "Log size on disk by topic",
            "Bytes the partitions' logs take on the brokers' data volumes, by topic (replicas included). The "
            "data volume's own fill level: KubePersistentVolumeFillingUp.",
            "bytes", [target(summed(series("kafka_log_size_bytes", "kafka"), by="topic"), "{{topic}}")]),
    ]


# -- the dashboard ----------------------------------------------------------------------------


ROWS: tuple[tuple[str, Callable[[], list[PanelBuilder]]], ...] = (
    ("End to end: POST accepted → written to a client's SSE socket", end_to_end),
    ("Ingest: POST → Kafka acknowledgement (acks=all)", ingest),
    ("Bridge: Kafka → Redis history + pub/sub", bridge),
    ("Stream: Redis pub/sub → SSE clients", stream),
    ("Kafka: the brokers", kafka),
)


def build() -> dashboard_model.Dashboard:
    """The dashboard model (grafana_foundation_sdk.models.dashboard.Dashboard)."""
    dashboard = (
        Dashboard("Chatroom / Pipeline")
        .uid(UID)
        .description("Every hop of Chatroom: ingest (POST → Kafka), bridge (Kafka → Redis), stream (Redis → SSE), "
                     "and the end-to-end delivery latency. Metrics: docs/metrics.md; alerts: docs/ops.md.")
        .tags(["chatroom"])
        .editable()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("utc")
        .with_variable(
            DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .current(VariableOption(selected=True, text="Prometheus", value="prometheus")))
        .with_variable(
            QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query({"query": 'label_values(up{job=~"chatroom-.*"}, namespace)', "refId": "namespace"})
            .current(VariableOption(selected=True, text="All", value="$__all"))
            .include_all(True)
            .all_value(".*")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC))
    )
    for title, panels in ROWS:
        dashboard = dashboard.with_row(Row(title))
        for panel in panels():
            dashboard = dashboard.with_panel(panel)
    model = dashboard.build()
    for number, built in enumerate(model.panels or [], start=1):  # rows and panels, in order
        built.id_val = number
    return model
