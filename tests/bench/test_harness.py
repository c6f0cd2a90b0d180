"""The benchmark harness, run tiny: its checks count what they should, both systems'
adapters deliver through it, and a run's summary and plots get written. Behaviour only:
no figure here is a performance claim."""

import asyncio
import copy
import json
import sys
import time
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench import loadgen, report, run  # noqa: E402
from bench.stacks import SeedStack  # noqa: E402


def _frame_ours(sender, seq, ts=1):
    data = {"id": "1", "room": "r", "user": "u", "text": f"S:{sender}:{seq}:{int(time.time() * 1e6)}", "ts": ts}
    return f"event: message\nid: 1\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _frame_seed(sender, seq):
    data = {"user": "u", "message": f"S:{sender}:{seq}:{int(time.time() * 1e6)}"}
    return f"event:message\ndata:{json.dumps(data)}\n\n".encode()


@pytest.mark.parametrize("frame", [_frame_ours, _frame_seed])
def test_reader_counts_lost_duplicated_and_reordered_events(frame):
    async def check():
        reader = loadgen.Reader("r", "http://127.0.0.1:1/", [loadgen.Collector()])
        # sent 0..7, all acknowledged; received 0 1 3 2 2 5 (4, 6 and 7 never arrive)
        reader._consume(b"".join(frame(7, seq) for seq in (0, 1, 3)))
        reader._consume(b"".join(frame(7, seq) for seq in (2, 2, 5)))
        sender = loadgen.Sender(7, "r", rate=1, count=8, sent=8, acked=set(range(8)))
        return reader, sender

    reader, sender = asyncio.run(check())
    assert reader.received == 6
    assert reader.reordered == 1
    assert reader.duplicates == 1
    assert reader.lost([sender]) == 3
    sender.acked.discard(7)  # a refused POST is not counted as lost
    assert reader.lost([sender]) == 2
    assert len(reader._collector_ref[0].latency_send_ms) == 6
    assert len(reader._collector_ref[0].latency_ts_ms) == (6 if frame is _frame_ours else 0)


@pytest.fixture(scope="module")
def seed(stack, tmp_path_factory):
    s = SeedStack(tmp_path_factory.mktemp("seed"), stack.settings.kafka_bootstrap, stack.settings.redis_url,
                  nginx_connections=2048)
    s.start()
    yield s
    s.stop()


def test_both_systems_deliver_through_the_harness(stack, seed, tmp_path):
    r = redis.Redis.from_url(stack.settings.redis_url)
    run._wait_history_ready(r, stack.settings.partitions, print, timeout=120)
    params = copy.deepcopy(run.PROFILES["smoke"])
    systems = [
        run.System("ours", loadgen.Target("ours", stack.settings.gateway_url, "ours"),
                   {name: stack.pid(name) for name in ("nginx", "ingest", "bridge", "stream")},
                   [stack.pid("stream")], r, "benchsmoke-o", stack.settings.service_url("stream")),
        run.System("seed", loadgen.Target("seed", seed.gateway_url, "seed"), seed.groups(), seed.stream_pids(), r,
                   "benchsmoke-s", f"http://127.0.0.1:{seed.stream_port}"),
    ]

    async def scenarios():
        results = {}
        for system in systems:
            results[system.name] = await run.delivery_scenarios(system, params, ["fanout", "capacity"], print)
            results[system.name]["idle"] = await run.idle_scenario(system, params, print)
        return results

    results = asyncio.run(scenarios())
    for name, res in results.items():
        fan = res["fanout"]
        assert fan["post_errors"] == 0, name
        assert fan["acked"] > 0, name
        assert fan["received"] == fan["expected_deliveries"] == fan["acked"] * params["fanout"]["clients"] // 2, name
        assert (fan["lost"], fan["duplicates"], fan["reordered"]) == (0, 0, 0), name
        assert fan["latency_send"]["count"] == fan["received"], name
        assert fan["resources"]["groups"]["loadgen"]["cpu_seconds"] > 0, name
        assert res["capacity"]["steps"], name
        assert res["idle"]["connections"] == params["idle"]["connections"], name
    assert results["ours"]["fanout"]["latency_ts"]["count"] == results["ours"]["fanout"]["received"]
    assert results["seed"]["fanout"]["latency_ts"] is None

    result = {"timestamp": "smoke", "profile": "smoke", "params": params, "machine": run.machine_description(),
              "results": results, "elapsed_s": 1.0}
    paths = report.write(result, tmp_path, latest=False)
    names = sorted(p.name for p in paths)
    assert names == ["smoke-capacity.png", "smoke-latency-cdf.png", "smoke-memory.png", "smoke.json", "smoke.md"]
    summary = (tmp_path / "smoke.md").read_text()
    assert "| ours |" in summary and "| seed |" in summary
    assert json.loads((tmp_path / "smoke.json").read_text())["results"]["ours"]["fanout"]["lost"] == 0
