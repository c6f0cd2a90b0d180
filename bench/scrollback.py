"""The scrollback scenario (ours only: the seed has no history).

A quiet room posts through the gateway, one message after every ``noise_records /
quiet_messages`` records that other rooms of its partition write (produced straight to
Kafka, flushed between the quiet room's messages, so they are batched as a busy ingest
batches them). Then ``readers`` clients page back through the quiet room, from the newest
page to the first message and again, ``limit`` messages a page, for ``duration`` s, while
live readers in other rooms receive a steady flow: the page times (split into pages the
Redis window answers and pages older than it, read from Kafka), and the live delivery
latency with and without the paging, on the same stream workers.
"""

import asyncio
import time
from typing import Any

import aiohttp
import httpx
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from bench.kit import hops, loadgen, stats
from bench.kit.cpu import Monitor
from chat_common.messages import Message, room_partition

PAGE_TIMEOUT_S = 30


def _room_in_partition(system, label, partition, partitions):
    while True:
        room = system.rooms(1, label)[0]
        if room_partition(room, partitions) == partition:
            return room


def _fill(target, kafka_bootstrap, topic, quiet, others, p):
    """Post the quiet room's messages between the other rooms' records; return their ids."""
    per_gap = max(1, p["noise_records"] // p["quiet_messages"])
    # Ingest's producer settings bound the log's record batches (kafka-python's default
    # batch_size, 16 KB): the noise is laid out in batches no larger than ingest writes, as
    # a page decodes the whole batch around each record it wants.
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5, metrics_enabled=False)
    values = [Message(room=room, user="other", text="x" * 60, ts=int(time.time() * 1000)).kafka_value()
              for room in others]
    ids = []
    try:
        with httpx.Client(timeout=30) as client:
            for i in range(p["quiet_messages"]):
                for j in range(per_gap):
                    room = others[j % len(others)]
                    producer.send(topic, key=room.encode(), value=values[j % len(others)])
                producer.flush(60)
                response = client.post(f"{target.base_url}/api/rooms/{quiet}/messages",
                                       json={"user": f"quiet{i % 50}", "text": f"quiet {i}"})
                response.raise_for_status()
                ids.append(int(response.json()["id"]))
    finally:
        producer.close()
    return ids


async def _wait_applied(redis_client, room, last_id, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        last = redis_client.hget(f"chat:room:{room}:meta", "last")
        if last is not None and int(last) >= last_id:
            return True
        await asyncio.sleep(0.5)
    return False


async def _pager(session, base_url, room, limit, stop_at, floor, out):
    """Page back from the newest to the first message, again and again, until ``stop_at``."""
    walk = 0  # this reader's walks so far: its first reads what no reader read yet
    while time.monotonic() < stop_at:
        before = None
        while time.monotonic() < stop_at:
            params = {"limit": str(limit)} | ({"before": str(before)} if before else {})
            started = time.perf_counter()
            try:
                async with session.get(f"{base_url}/stream/rooms/{room}/history", params=params) as response:
                    body = await response.json()
                    status = response.status
            except (TimeoutError, aiohttp.ClientError):
                out["errors"] += 1
                break
            elapsed_ms = (time.perf_counter() - started) * 1000
            if status != 200:
                out["statuses"][status] = out["statuses"].get(status, 0) + 1
                await asyncio.sleep(0.2)
                break
            messages = body["messages"]
            kafka = not messages or int(messages[0]["id"]) <= floor or "next_before" in body
            out["kafka_ms" if kafka else "redis_ms"].append(elapsed_ms)
            if kafka:
                out["kafka_first_walk_ms" if walk == 0 else "kafka_later_ms"].append(elapsed_ms)
            out["messages"] += len(messages)
            if not body["more"]:
                out["full_walks"] += 1
                walk += 1
                break
            before = body.get("next_before") or messages[0]["id"]


def _counters(stream_url):
    """The stream service's Kafka records read for history pages, and its cache's hits and misses."""
    counts = {"records": 0.0, "hit": 0.0, "miss": 0.0}
    for family in text_string_to_metric_families(hops.metrics_text(stream_url)):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            if family.name == "chat_stream_scrollback_records_read":
                counts["records"] += sample.value
            elif family.name == "chat_stream_scrollback_cache":
                counts[sample.labels["result"]] += sample.value
    return counts


async def scrollback_scenario(system, params, log, kafka_bootstrap, topic, partitions):
    p = params["scrollback"]
    partition = room_partition(system.rooms(1, "q")[0], partitions)
    quiet = _room_in_partition(system, "q", partition, partitions)
    others = [_room_in_partition(system, "o", partition, partitions) for _ in range(p["noise_rooms"])]
    log(f"[{system.name}] scrollback: filling partition {partition}: {p['quiet_messages']} messages of a quiet "
        f"room among {p['noise_records']:,} records of {len(others)} other rooms")
    started = time.monotonic()
    ids = await asyncio.to_thread(_fill, system.target, kafka_bootstrap, topic, quiet, others, p)
    applied = await _wait_applied(system.redis, quiet, ids[-1])
    fill_s = time.monotonic() - started
    floor = int(system.redis.hget(f"chat:room:{quiet}:meta", "floor") or -1)
    log(f"[{system.name}] scrollback: filled in {fill_s:.0f} s (applied: {applied}); Redis window floor {floor}")

    live_rooms = system.rooms(p["live_rooms"], "l")
    readers = loadgen.Readers(system.target, live_rooms, p["live_clients"])
    await readers.open(subscribed=system.subscribed_counter(live_rooms))
    base = 3_000_000
    try:
        # Live delivery alone, then the same with the readers paging back.
        alone = await loadgen.run_step(system.target, readers, p["live_rate"], p["duration"], base)
        loadgen.reset_reader_counters(readers)
        out: dict[str, Any] = {"redis_ms": [], "kafka_ms": [], "kafka_first_walk_ms": [], "kafka_later_ms": [],
                               "errors": 0, "statuses": {}, "messages": 0, "full_walks": 0}
        counts0 = _counters(system.metrics_urls["stream"])
        hops0 = system.hops_before()
        monitor = Monitor(system.groups).start()
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector,
                                         timeout=aiohttp.ClientTimeout(total=PAGE_TIMEOUT_S)) as session:
            stop_at = time.monotonic() + p["duration"]
            pagers = [_pager(session, system.target.base_url, quiet, p["limit"], stop_at, floor, out)
                      for _ in range(p["readers"])]
            live_task = loadgen.run_step(system.target, readers, p["live_rate"], p["duration"], base + 100_000)
            together, *_ = await asyncio.gather(live_task, *pagers)
        resources = monitor.stop()
        counts = {k: v - counts0[k] for k, v in _counters(system.metrics_urls["stream"]).items()}
        records = counts["records"]
    finally:
        await readers.close()
    kafka_pages = len(out["kafka_ms"])
    result = {
        "params": dict(p),
        "partition": partition,
        "fill_seconds": fill_s,
        "applied": applied,
        "redis_floor": floor,
        "quiet_ids": [ids[0], ids[-1]],
        "page_kafka": stats.quantiles(out["kafka_ms"]),
        "page_redis": stats.quantiles(out["redis_ms"]),
        # Each reader's first walk meets the records no page read yet; the later ones find
        # them in the stream workers' cache.
        "page_kafka_first_walk": stats.quantiles(out["kafka_first_walk_ms"]),
        "page_kafka_later_walks": stats.quantiles(out["kafka_later_ms"]),
        "pages": kafka_pages + len(out["redis_ms"]),
        "kafka_pages": kafka_pages,
        "full_walks": out["full_walks"],
        "page_errors": out["errors"],
        "page_statuses": out["statuses"],
        "records_read": records,
        "records_per_kafka_page": records / kafka_pages if kafka_pages else None,
        "cache_hits": counts["hit"],
        "cache_misses": counts["miss"],
        "live_alone": {k: alone[k] for k in ("acked", "received", "lost", "duplicates", "reordered")}
        | {"latency_ts": stats.quantiles(alone["latency_ts_ms"])},
        "live_with_paging": {k: together[k] for k in ("acked", "received", "lost", "duplicates", "reordered")}
        | {"latency_ts": stats.quantiles(together["latency_ts_ms"])},
        "hops": system.hops_after(hops0),
        "resources": resources,
    }
    q, la, lw = result["page_kafka"], result["live_alone"]["latency_ts"], result["live_with_paging"]["latency_ts"]
    log(f"[{system.name}] scrollback: {result['pages']} pages ({kafka_pages} from Kafka, {out['full_walks']} walks "
        f"to the first message), Kafka page p50 {stats.pick(q, 'p50'):.1f} ms p99 "
        f"{stats.pick(q, 'p99'):.1f} ms, {result['records_per_kafka_page'] or 0:.0f} records read per "
        f"Kafka page (first walks p99 {stats.pick(result['page_kafka_first_walk'], 'p99'):.1f} ms, later walks "
        f"p99 {stats.pick(result['page_kafka_later_walks'], 'p99'):.1f} ms); live p99 {stats.pick(la, 'p99'):.1f} "
        f"ms alone, {stats.pick(lw, 'p99'):.1f} ms while paging; errors {out['errors']}, {out['statuses']}")
    return result


# -- the summary -----------------------------------------------------------------------


def summary(s):
    """The markdown lines of the scenario's result ``s``."""
    if not s:
        return []
    p = s["params"]

    def q(node, key):
        return f"{node[key]:.1f}" if node else "n/a"

    la, lw = s["live_alone"]["latency_ts"], s["live_with_paging"]["latency_ts"]
    return [
        "## Scrollback (ours)", "",
        f"A quiet room's {p['quiet_messages']:,} messages spread through {p['noise_records']:,} records of "
        f"{p['noise_rooms']} other rooms in its partition; {p['readers']} readers paging back through it "
        f"({p['limit']} a page) for {p['duration']} s, while {p['live_clients']} live readers in "
        f"{p['live_rooms']} other rooms receive {p['live_rate']} msg/s on the same stream workers.", "",
        "| measure | target | p50 ms | p99 ms | count |", "|---|---|---|---|---|",
        f"| page older than the Redis window (Kafka) | p99 <= 100 ms | {q(s['page_kafka'], 'p50')} | "
        f"{q(s['page_kafka'], 'p99')} | {s['kafka_pages']:,} |",
        f"| page from the Redis window | | {q(s['page_redis'], 'p50')} | {q(s['page_redis'], 'p99')} | "
        f"{s['pages'] - s['kafka_pages']:,} |",
        f"| live delivery (`ts`), alone | | {q(la, 'p50')} | {q(la, 'p99')} | {la['count'] if la else 0:,} |",
        f"| live delivery (`ts`), while paging | | {q(lw, 'p50')} | {q(lw, 'p99')} | {lw['count'] if lw else 0:,} |",
        "",
        f"Kafka records read per Kafka page: {s['records_per_kafka_page'] or 0:.0f}; messages older than the window "
        f"served from the stream workers' cache: {s.get('cache_hits', 0):,.0f}, read from Kafka: "
        f"{s.get('cache_misses', 0):,.0f}; walks to the first message: "
        f"{s['full_walks']}; page errors {s['page_errors']}, refused {s['page_statuses'] or 'none'}.", "",
    ]
