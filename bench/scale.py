"""The scale model: what each component needs for a number of open connections, a room size
and a rate per room, from the per-process costs a benchmark run measured.

    python -m bench.scale bench/results/<timestamp>.json

Each process's CPU is fitted as ``fixed + per_unit * load`` (least squares) over the
project's passing capacity steps (below saturation: past it, a starved process's CPU says
less than its demand), where the load is deliveries/s for
the stream service and the gateway and messages/s for ingest, the bridge, Kafka and Redis.
One passing step is left out of the fit and predicted, as the check of the model. Memory:
the idle scenario's RSS per open connection. The limits: a stream worker holds
``STREAM_WORKER_CONNECTIONS`` (10,000) connections; one bridge consumes a partition at most,
on one core (one Python process); Redis runs commands on one core, so one node carries what
one core does, and Redis Cluster (``REDIS_MODE=cluster``) as many shards as the partitions are
spread over: each shard holds whole partitions (ARCHITECTURE.md, "Redis layout").
"""

import argparse
import json
import math

from bench.kit import stats

BY_DELIVERY = ("stream", "nginx")
BY_MESSAGE = ("ingest", "bridge", "kafka", "redis")
WORKER_CONNECTIONS = 10_000
TARGET_UTILISATION = 0.7  # of a core per process, when sizing instances
PROFILES = (  # (open connections, readers per room, messages/s per room)
    (100_000, 50, 0.2),
    (100_000, 1_000, 1.0),
    (1_000_000, 50, 0.2),
    (1_000_000, 1_000, 1.0),
    (10_000_000, 100, 1.0),  # 100,000 messages/s: what Redis Cluster mode is for
)


def fit(points):
    """Least squares ``y = a + b * x`` over (x, y) points; (a, b), a clamped at 0."""
    fitted = stats.line(points)
    if fitted is None:  # one load only: all of it per unit
        n = len(points)
        return 0.0, (sum(y for _, y in points) / n) / (sum(x for x, _ in points) / n)
    a, b = fitted
    if a < 0:  # no negative idle cost: a line through the origin instead
        a, b = 0.0, sum(x * y for x, y in points) / sum(x * x for x, _ in points)
    return a, b


def _point(step):
    groups, seconds = step["resources"]["groups"], step["resources"]["seconds"]
    cores = {name: g["cpu_seconds"] / seconds for name, g in groups.items()}
    return step["acked_rate"], step["deliveries_per_s"], cores


def costs(result, leave_out=None):
    """{process: (fixed cores, cores per unit of its load)} from the project's steps; the
    step at index ``leave_out`` of the passing capacity steps is not used."""
    ours = result["results"]["ours"]
    passing = [s for s in ours["capacity"]["steps"] if s["passed"]]
    steps = [s for i, s in enumerate(passing) if i != leave_out]
    points = [_point(s) for s in steps]
    model = {}
    for name in BY_DELIVERY + BY_MESSAGE:
        load = 1 if name in BY_DELIVERY else 0
        model[name] = fit([(p[load], p[2][name]) for p in points if name in p[2]])
    return model


def predict(model, messages, deliveries):
    return {name: a + b * (deliveries if name in BY_DELIVERY else messages) for name, (a, b) in model.items()}


def check(result):
    """The model fitted without one passing step, and that step's measured cores, per process."""
    passing = [s for s in result["results"]["ours"]["capacity"]["steps"] if s["passed"]]
    left = len(passing) - 1  # the busiest passing step
    messages, deliveries, measured = _point(passing[left])
    return messages, deliveries, predict(costs(result, leave_out=left), messages, deliveries), measured


def size(model, result, connections, room, rate, partitions):
    """Cores and instances per component, and memory of the stream service, for a profile."""
    per_connection = result["results"]["ours"]["idle"]["bytes_per_connection"]
    deliveries = connections * rate
    messages = connections / room * rate
    cores = {name: b * (deliveries if name in BY_DELIVERY else messages) for name, (_, b) in model.items()}
    limits = {
        # messages/s at which one component can go no further without a change of design
        "bridge": partitions * TARGET_UTILISATION / model["bridge"][1],
        "redis": TARGET_UTILISATION / model["redis"][1],
    }
    return {
        "deliveries": deliveries,
        "messages": messages,
        "cores": cores,
        "stream_workers": max(math.ceil(connections / WORKER_CONNECTIONS),
                              math.ceil(cores["stream"] / TARGET_UTILISATION)),
        "stream_memory_gib": connections * per_connection / 2**30,
        "gateway_descriptors": 2 * connections,
        "limits": limits,
        # Cluster mode: enough partitions that no bridge passes TARGET_UTILISATION of its core,
        # and enough Redis shards (primaries) that none does; a shard holds whole partitions.
        "partitions": max(partitions, math.ceil(cores["bridge"] / TARGET_UTILISATION)),
        "redis_shards": max(1, math.ceil(cores["redis"] / TARGET_UTILISATION)),
    }


def report(result, partitions=6):
    model = costs(result)
    messages, deliveries, predicted, measured = check(result)
    lines = [
        "| process | fixed cores | CPU per unit | unit |", "|---|---|---|---|",
        *(f"| {name} | {a:.3f} | {b * 1e6:.1f} µs | {'delivery' if name in BY_DELIVERY else 'message'} |"
          for name, (a, b) in model.items()),
        "",
        f"Check: fitted without the busiest passing capacity step ({messages:.0f} msg/s, {deliveries:,.0f} "
        f"deliveries/s), the model predicts {sum(predicted.values()):.2f} stack cores there; measured "
        f"{sum(measured[n] for n in predicted):.2f}.",
        "", "| " + " | ".join(f"{n} predicted / measured" for n in predicted) + " |",
        "|" + "---|" * len(predicted),
        "| " + " | ".join(f"{predicted[n]:.2f} / {measured[n]:.2f}" for n in predicted) + " |",
        "",
        "| connections | readers per room | msg/s per room | deliveries/s | messages/s | stream cores (workers) | "
        "stream memory | gateway cores (descriptors) | ingest | bridge | Kafka | Redis | partitions | Redis shards |",
        "|" + "---|" * 14,
    ]
    for connections, room, rate in PROFILES:
        s = size(model, result, connections, room, rate, partitions)
        c = s["cores"]
        lines.append(
            f"| {connections:,} | {room:,} | {rate} | {s['deliveries']:,.0f} | {s['messages']:,.0f} | "
            f"{c['stream']:.1f} ({s['stream_workers']}) | {s['stream_memory_gib']:.1f} GiB | {c['nginx']:.1f} "
            f"({s['gateway_descriptors']:,}) | {c['ingest']:.1f} | {c['bridge']:.1f} | {c['kafka']:.1f} | "
            f"{c['redis']:.2f} | {s['partitions']} | {s['redis_shards']} |")
    limits = size(model, result, 1, 1, 1, partitions)["limits"]
    lines += ["", f"Limits without a change of design ({TARGET_UTILISATION:.0%} of a core each): the bridge, one "
              f"process per partition at most, {limits['bridge']:,.0f} messages/s over {partitions} partitions; "
              f"Redis, one core, {limits['redis']:,.0f} messages/s. Past these: more partitions (and bridges), "
              f"and Redis Cluster with the shards the last column gives."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", help="a benchmark run's JSON (bench/results/<timestamp>.json)")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    with open(args.result) as f:
        print(report(json.load(f), args.partitions))


if __name__ == "__main__":
    main()
