"""Faults under steady load: while 200 readers follow 5 rooms and senders post about 50
messages/s through the gateway, one part of the stack fails; every reader must still end
with every acknowledged message of its room once, in Kafka order.

The faults, one per test: ``kill -9`` of ingest, of the bridge and of the stream service, a
graceful (SIGTERM) restart of the stream service, Redis restarted empty, and the Kafka
broker stopped and started. ``CHAOS_ROUNDS`` (default 1) runs the whole series that many
times; ``CHAOS_READERS`` and ``CHAOS_RATE`` change the load. Each test leaves the stack
restored and ready. The figures of each fault go to
``test-artifacts/reliability/under-load-<fault>.json`` (docs/reliability.md quotes them).
"""

import asyncio
import os
import time
from collections import defaultdict

import pytest
from steady_load import SteadyLoad
from support import hub_refills, new_room, report

ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "1"))
READERS = int(os.environ.get("CHAOS_READERS", "200"))
RATE = float(os.environ.get("CHAOS_RATE", "50"))  # messages per second, all rooms together
ROOMS = 5
STEADY_S = 3  # traffic before the fault strikes
AFTER_S = 4  # traffic after the stack is ready again


def kill_9(service):
    async def fault(stack, load, struck_at):
        await asyncio.to_thread(stack.kill, service)  # supervisord restarts it, as Kubernetes restarts a pod
    return fault


async def graceful_stream_restart(stack, load, struck_at):
    await asyncio.to_thread(stack.ctl, "restart", "stream")  # SIGTERM: refuse new streams, drain, exit


async def redis_restarted_empty(stack, load, struck_at):
    try:
        await asyncio.to_thread(stack.ctl, "stop", "redis")
    finally:
        await asyncio.to_thread(stack.ctl, "start", "redis")  # no persistence: it comes back empty


async def kafka_stopped_and_started(stack, load, struck_at):
    """The only broker goes away until senders have been refused, then comes back."""
    try:
        await asyncio.to_thread(stack.ctl, "stop", "kafka")
        deadline = time.monotonic() + 30
        while not load.refusals(struck_at) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        await asyncio.to_thread(stack.ctl, "start", "kafka")


FAULTS = {
    "kill-9-ingest": kill_9("ingest"),
    "kill-9-bridge": kill_9("bridge"),
    "kill-9-stream": kill_9("stream"),
    "stream-graceful-restart": graceful_stream_restart,
    "redis-restarted-empty": redis_restarted_empty,
    "kafka-stopped": kafka_stopped_and_started,
}
RESULTS = defaultdict(list)  # fault -> the figures of each round run in this session


async def fault_under_load(stack, fault):
    """Steady traffic, the fault, the stack ready again, a few more seconds of traffic;
    then the senders stop and every reader is checked. Returns the figures."""
    base = stack.settings.gateway_url
    rooms = [new_room("load") for _ in range(ROOMS)]
    async with SteadyLoad(base, rooms, READERS, RATE) as load:
        await load.open_readers()
        load.start_senders()
        await asyncio.sleep(STEADY_S)
        struck_at, acked_before = time.monotonic(), load.acked_count
        await fault(stack, load, struck_at)
        await asyncio.to_thread(stack.wait_ready, 120)
        ready_s = time.monotonic() - struck_at
        await asyncio.sleep(AFTER_S)
        await load.stop_senders()
        await load.wait_delivered()
        check = load.check()
        refusals = load.refusals(struck_at)
        refused_at = sorted(at for sender in load.senders for _, at in sender.refusals if at >= struck_at)
        refills = await asyncio.to_thread(hub_refills, stack)
        return {
            "readers": READERS,
            "rooms": ROOMS,
            "messages_per_s_offered": RATE,
            "messages_per_s_before_fault": round(acked_before / STEADY_S, 1),
            "messages": load.acked_count,
            "deliveries": sum(len(reader.messages) for reader in load.readers),
            "lost": check.lost,
            "duplicated": check.duplicated,
            "out_of_order": check.out_of_order,
            "unexpected": check.unexpected,
            "resets": sum(reader.resets for reader in load.readers),
            "recovery_s": round(load.longest_pause(struck_at), 2),
            "stack_ready_s": round(ready_s, 2),
            "posts_refused": sum(refusals.values()),
            "posts_refused_by_status": {str(status): count for status, count in sorted(refusals.items())},
            "posts_refused_for_s": round(refused_at[-1] - refused_at[0], 2) if refused_at else 0.0,
            "reconnects": sum(reader.connects - 1 for reader in load.readers),
            "readers_reconnected": sum(1 for reader in load.readers if reader.connects > 1),
            "reconnects_refused": sum(reader.refused for reader in load.readers),
            "readers_failed": load.failures(),
            "hub_refills": refills,  # after a restart of stream: rooms joined before a worker's pub/sub was up
        }


ROUNDS_AND_FAULTS = [(name, n) for n in range(1, ROUNDS + 1) for name in FAULTS]


@pytest.mark.parametrize("fault,round_number", ROUNDS_AND_FAULTS,
                         ids=[f"{name}-round{n}" for name, n in ROUNDS_AND_FAULTS])
def test_under_steady_load_a_fault_loses_repeats_and_reorders_nothing(stack, fault, round_number):
    try:
        figures = asyncio.run(fault_under_load(stack, FAULTS[fault]))
    finally:
        stack.wait_ready(120)  # whatever happened, later tests get a whole stack
    RESULTS[fault].append(figures)
    report(f"under-load-{fault}", {
        "rounds": RESULTS[fault],
        "worst_recovery_s": max(r["recovery_s"] for r in RESULTS[fault]),
    })
    assert not figures["readers_failed"], figures  # every reader kept following its room
    wrong = {name: figures[name] for name in ("lost", "duplicated", "out_of_order", "unexpected")}
    assert wrong == dict.fromkeys(wrong, 0), figures
    assert figures["resets"] == 0, figures  # every reconnect resumed exactly, within the Redis window
    if fault in ("kill-9-stream", "stream-graceful-restart"):
        assert figures["readers_reconnected"] == READERS, figures  # each one lost its stream and resumed
    if fault == "kafka-stopped":
        assert figures["posts_refused_by_status"].get("503"), figures  # senders were told to retry
