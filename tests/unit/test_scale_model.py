"""The scale model in bench/scale.py recovers per-process costs from a run's steps and sizes
a deployment from them."""


import pytest

from bench import scale

FIXED = {"stream": 0.05, "nginx": 0.02, "ingest": 0.06, "bridge": 0.07, "kafka": 0.2, "redis": 0.02}
PER_UNIT = {"stream": 20e-6, "nginx": 8e-6, "ingest": 2e-3, "bridge": 1e-3, "kafka": 1e-3, "redis": 1e-4}


def _step(rate, readers_per_room=100, passed=True):
    deliveries = rate * readers_per_room
    groups = {}
    for name in FIXED:
        load = deliveries if name in scale.BY_DELIVERY else rate
        groups[name] = {"cpu_seconds": (FIXED[name] + PER_UNIT[name] * load) * 8.0}
    return {"acked_rate": rate, "deliveries_per_s": deliveries, "passed": passed,
            "resources": {"seconds": 8.0, "groups": groups}}


@pytest.fixture
def result():
    steps = [_step(r) for r in (25, 37.5, 56, 84)] + [_step(127, passed=False)]
    return {"results": {"ours": {"capacity": {"steps": steps}, "fanout": _step(200),
                                 "idle": {"bytes_per_connection": 27_000}}}}


def test_the_fit_recovers_each_processs_fixed_and_per_unit_cost(result):
    model = scale.costs(result)
    for name in FIXED:
        assert model[name] == (pytest.approx(FIXED[name]), pytest.approx(PER_UNIT[name]))


def test_the_check_predicts_the_step_left_out(result):
    messages, deliveries, predicted, measured = scale.check(result)
    assert (messages, deliveries) == (84, 8400)
    assert predicted == {name: pytest.approx(measured[name]) for name in predicted}


def test_sizing_counts_stream_workers_by_connections_and_cores_and_names_the_bridges_limit(result):
    model = scale.costs(result)
    s = scale.size(model, result, 1_000_000, 50, 0.2, partitions=6)
    assert (s["deliveries"], s["messages"]) == (200_000, 4_000)
    assert s["cores"]["stream"] == pytest.approx(4.0)
    assert s["stream_workers"] == 100  # 10,000 connections each, more than 4 cores need
    assert s["stream_memory_gib"] == pytest.approx(1_000_000 * 27_000 / 2**30)
    assert s["limits"]["bridge"] == pytest.approx(6 * 0.7 / 1e-3)
    assert "| 1,000,000 | 50 | 0.2 |" in scale.report(result)


def test_sizing_in_cluster_mode_gives_the_partitions_and_redis_shards_100000_messages_need(result):
    model = scale.costs(result)
    s = scale.size(model, result, 10_000_000, 100, 1.0, partitions=6)
    assert s["messages"] == 100_000
    # 100 bridge cores at 70% each: 143 partitions; 10 Redis cores at 70%: 15 shards
    assert (s["partitions"], s["redis_shards"]) == (143, 15)
    small = scale.size(model, result, 100_000, 50, 0.2, partitions=6)
    assert (small["partitions"], small["redis_shards"]) == (6, 1)
