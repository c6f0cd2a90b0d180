"""The chart's topology under steady load: 2 ingest, 3 bridge and 3 stream instances behind
the gateway, 6 partitions (``scaled_stack``), while 200 readers follow 5 rooms and senders
post about 50 messages/s. Each test changes the topology mid-flow as a cluster does (a
consumer-group rebalance, a bridge lost, a rolling restart, a scale-out, a retry that lands
on another ingest pod); every reader must end with every acknowledged message of its room
once, in Kafka order, and no reader may be reset.

The rooms sit in five different partitions, so that every bridge carries some of them. Each
test restores the topology before it ends. Figures go to
``test-artifacts/reliability/scale-out-<case>.json`` (docs/reliability.md quotes them).
"""

import asyncio
import itertools
import json
import os
import threading
import time

import httpx
import pytest
from kafka.partitioner.default import murmur2
from steady_load import SteadyLoad
from support import new_room, post, report

READERS = int(os.environ.get("CHAOS_READERS", "200"))
RATE = float(os.environ.get("CHAOS_RATE", "50"))  # messages per second, all rooms together
ROOMS = 5
LATE_READERS = 60  # readers opened after the stream service was scaled out
STEADY_S = 3  # traffic before the change
AFTER_S = 3  # traffic after the stack is whole again

pytestmark = pytest.mark.slow


# -- the topology, seen from outside ---------------------------------------------------------


def partition_of(room, partitions):
    """The partition Kafka's default partitioner gives the room (ingest's key = room)."""
    return (murmur2(room.encode()) & 0x7FFFFFFF) % partitions


def rooms_in_distinct_partitions(stack, count):
    rooms, taken = [], set()
    while len(rooms) < count:
        room = new_room("scale")
        partition = partition_of(room, stack.settings.partitions)
        if partition not in taken:
            taken.add(partition)
            rooms.append(room)
    return rooms


def gauge(url, name):
    """An unlabelled gauge of one instance's /metrics; None when the instance does not answer."""
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    return next((float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " ")), None)


def per_instance(stack, service, metric):
    """{program: the metric's value} for every instance of the service."""
    settings = stack.settings
    return {program: gauge(settings.service_url(service, n), metric)
            for n, program in enumerate(settings.instances(service), start=1)}


def assigned_partitions(stack):
    return per_instance(stack, "bridge", "chat_bridge_assigned_partitions")


def wait_spread(stack, owners, timeout=60):
    """Wait until the bridges ``owners`` consume every partition between them, each some
    (chat_bridge_assigned_partitions); return the partitions per bridge."""
    deadline = time.monotonic() + timeout
    while True:
        assigned = assigned_partitions(stack)
        counts = [assigned.get(owner) or 0 for owner in owners]
        if sum(counts) == stack.settings.partitions and min(counts) >= 1:
            return assigned
        if time.monotonic() > deadline:
            raise TimeoutError(f"partitions not spread over {owners} after {timeout} s: {assigned}")
        time.sleep(0.2)


def partitions_of(stack, bridge):
    """The partitions the bridge was last assigned, from its log."""
    owned = None
    for line in (stack.run_dir / "logs" / f"{bridge}.log").read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("message") == "partitions assigned":
            owned = set(record["partitions"])
    return owned


def pause_between(readers, since, until):
    """The longest wait any of ``readers`` had between two messages from ``since`` to
    ``until`` (time.monotonic()), counting the wait that spans ``since``."""
    longest = 0.0
    for reader in readers:
        arrivals = reader.arrived
        start = max([i for i, at in enumerate(arrivals) if at <= since] or [0])
        window = [at for at in arrivals[start:] if at <= until]
        following = [at for at in arrivals if at > until][:1]  # the wait that spans ``until``
        window += following
        longest = max([longest] + [b - a for a, b in itertools.pairwise(window)])
    return longest


# -- one run ------------------------------------------------------------------------------------


async def under_load(stack, change, readers=READERS, rooms=None):
    """Steady traffic; ``change(load)`` (a coroutine, returns figures of its own); the stack
    whole and ready again, a few more seconds of traffic; then the senders stop and every
    reader is checked. Returns the figures."""
    base = stack.settings.gateway_url
    rooms = rooms or rooms_in_distinct_partitions(stack, ROOMS)
    async with SteadyLoad(base, rooms, readers, RATE) as load:
        await load.open_readers()
        load.start_senders()
        await asyncio.sleep(STEADY_S)
        started_at = time.monotonic()
        figures = await change(load)
        await asyncio.to_thread(stack.wait_ready, 120)
        await asyncio.sleep(AFTER_S)
        await load.stop_senders()
        await load.wait_delivered()
        check, late = load.check(), load.check_late()
        refusals = load.refusals(started_at)
        return {
            "readers": readers,
            "late_readers": len(load.late_readers),
            "rooms": len(rooms),
            "messages_per_s_offered": RATE,
            "messages": load.acked_count,
            "deliveries": sum(len(r.messages) for r in load.readers + load.late_readers),
            "lost": check.lost + late.lost,
            "duplicated": check.duplicated + late.duplicated,
            "out_of_order": check.out_of_order + late.out_of_order,
            "unexpected": check.unexpected + late.unexpected,
            "resets": sum(r.resets for r in load.readers + load.late_readers),
            "longest_pause_s": round(load.longest_pause(started_at), 2),
            "posts_refused_by_status": {str(status): count for status, count in sorted(refusals.items())},
            "readers_reconnected": sum(1 for r in load.readers if r.connects > 1),
            "reconnects_refused": sum(r.refused for r in load.readers + load.late_readers),
            "readers_failed": load.failures(),
            **figures,
        }


def assert_every_reader_whole(figures):
    assert not figures["readers_failed"], figures
    wrong = {name: figures[name] for name in ("lost", "duplicated", "out_of_order", "unexpected", "resets")}
    assert wrong == dict.fromkeys(wrong, 0), figures


@pytest.fixture
def stack(scaled_stack):
    """The chart's topology; whatever a test did, the next one finds it whole and ready."""
    yield scaled_stack
    for service, count in (("ingest", 2), ("bridge", 3), ("stream", 3)):
        if scaled_stack.settings.replicas[service] != count:
            scaled_stack.scale(service, count)
    scaled_stack.ctl("start", "all")  # a no-op for what runs
    scaled_stack.wait_ready(120)


# -- the tests ----------------------------------------------------------------------------------


def test_partitions_spread_over_every_bridge_and_rooms_keep_their_order_while_a_bridge_joins_and_leaves(stack):
    three = stack.settings.instances("bridge")
    spread_at_start = wait_spread(stack, three)

    async def add_then_remove_a_bridge(load):
        started = time.monotonic()
        await asyncio.to_thread(stack.scale, "bridge", 4)  # a fourth bridge joins: a rebalance
        four = stack.settings.instances("bridge")
        spread_over_four = await asyncio.to_thread(wait_spread, stack, four)
        joined_s = time.monotonic() - started
        await asyncio.sleep(STEADY_S)
        removed_at = time.monotonic()
        await asyncio.to_thread(stack.scale, "bridge", 3)  # the newest leaves (SIGTERM), as a StatefulSet scales down
        spread_over_three = await asyncio.to_thread(wait_spread, stack, three)
        return {
            "partitions_per_bridge_at_start": spread_at_start,
            "partitions_per_bridge_with_four": spread_over_four,
            "partitions_per_bridge_after_removal": spread_over_three,
            "bridge_added_to_spread_s": round(joined_s, 2),
            "bridge_removed_to_spread_s": round(time.monotonic() - removed_at, 2),
            "longest_pause_after_removal_s": round(load.longest_pause(removed_at), 2),
        }

    figures = asyncio.run(under_load(stack, add_then_remove_a_bridge))
    report("scale-out-bridge-joins-and-leaves", figures)
    assert_every_reader_whole(figures)
    assert all(count >= 1 for count in figures["partitions_per_bridge_with_four"].values()), figures


def test_kill_9_of_one_bridge_of_three_its_partitions_wait_for_it_or_move_after_the_session_timeout(stack):
    victim = stack.settings.instances("bridge")[1]
    others = [b for b in stack.settings.instances("bridge") if b != victim]
    rooms = rooms_in_distinct_partitions(stack, ROOMS)

    async def kill_then_lose_a_bridge(load):
        owned = partitions_of(stack, victim)
        victim_readers = [r for r in load.readers if partition_of(r.room, stack.settings.partitions) in owned]
        other_readers = [r for r in load.readers if r not in victim_readers]

        # 1. kill -9, restarted at once (a container restarted in its pod): the static
        #    member takes its partitions back without a rebalance.
        killed_at = time.monotonic()
        await asyncio.to_thread(stack.kill, victim)
        await asyncio.to_thread(stack.wait_ready, 120)
        await asyncio.to_thread(wait_spread, stack, stack.settings.instances("bridge"))
        back_s = time.monotonic() - killed_at
        await asyncio.sleep(STEADY_S)

        # 2. kill -9 and kept down (its node is lost): its partitions wait for the group's
        #    session timeout, then the other two take them over.
        lost_at = time.monotonic()
        await asyncio.to_thread(stack.lose, victim)
        await asyncio.to_thread(wait_spread, stack, others)
        taken_over_s = time.monotonic() - lost_at
        await asyncio.sleep(STEADY_S)

        # 3. it returns: a rebalance over three again.
        returned_at = time.monotonic()
        await asyncio.to_thread(stack.ctl, "start", victim)
        await asyncio.to_thread(stack.wait_ready, 120)
        await asyncio.to_thread(wait_spread, stack, stack.settings.instances("bridge"))
        rejoined_s = time.monotonic() - returned_at
        await asyncio.sleep(AFTER_S)
        now = time.monotonic()
        return {
            "victim": victim,
            "victim_partitions": sorted(owned),
            "rooms_on_victim": len({r.room for r in victim_readers}),
            "restarted_partitions_back_s": round(back_s, 2),
            "restarted_pause_victim_rooms_s": round(pause_between(victim_readers, killed_at, lost_at), 2),
            "restarted_pause_other_rooms_s": round(pause_between(other_readers, killed_at, lost_at), 2),
            "lost_partitions_taken_over_s": round(taken_over_s, 2),
            "lost_pause_victim_rooms_s": round(pause_between(victim_readers, lost_at, returned_at), 2),
            "lost_pause_other_rooms_s": round(pause_between(other_readers, lost_at, returned_at), 2),
            "returned_spread_again_s": round(rejoined_s, 2),
            "returned_pause_all_rooms_s": round(pause_between(load.readers, returned_at, now), 2),
        }

    figures = asyncio.run(under_load(stack, kill_then_lose_a_bridge, rooms=rooms))
    report("scale-out-kill-9-one-bridge-of-three", figures)
    assert_every_reader_whole(figures)
    assert figures["rooms_on_victim"] >= 1, figures  # the fault did hit rooms being read


def test_a_rolling_restart_of_every_stream_instance_resumes_every_reader_by_id(stack):
    async def rolling_restart(load):
        connections = await asyncio.to_thread(per_instance, stack, "stream", "chat_stream_connections")
        steps = []
        for n, _program in enumerate(stack.settings.instances("stream"), start=1):
            started = time.monotonic()
            await asyncio.to_thread(stack.restart_instance, "stream", n)  # SIGTERM: drain, exit; then start
            await asyncio.to_thread(stack.wait_ready, 120)
            steps.append((started, time.monotonic()))
        return {
            "connections_per_instance_before": connections,
            "restart_s_per_instance": [round(end - start, 2) for start, end in steps],
            "longest_pause_s_per_instance": [round(pause_between(load.readers, start, end), 2) for start, end in steps],
        }

    figures = asyncio.run(under_load(stack, rolling_restart))
    report("scale-out-stream-rolling-restart", figures)
    assert_every_reader_whole(figures)
    assert all(count and count >= 1 for count in figures["connections_per_instance_before"].values()), figures
    assert figures["readers_reconnected"] == READERS, figures  # every reader lost its stream once at least, and resumed


def test_stream_scaled_from_one_to_three_mid_flow_spreads_new_readers(stack):
    stack.scale("stream", 1)

    async def scale_out(load):
        started = time.monotonic()
        await asyncio.to_thread(stack.scale, "stream", 3)
        scaled_s = time.monotonic() - started
        before = await asyncio.to_thread(per_instance, stack, "stream", "chat_stream_connections")
        await load.open_readers(late=LATE_READERS)
        after = await asyncio.to_thread(per_instance, stack, "stream", "chat_stream_connections")
        return {
            "scaled_to_ready_s": round(scaled_s, 2),
            "connections_per_instance_before_late_readers": before,
            "connections_per_instance_after_late_readers": after,
        }

    figures = asyncio.run(under_load(stack, scale_out))
    report("scale-out-stream-one-to-three", figures)
    assert_every_reader_whole(figures)
    before, after = figures["connections_per_instance_before_late_readers"], figures["connections_per_instance_after_late_readers"]
    new = {program: after[program] - (before[program] or 0) for program in after}
    # Taken in turn: each instance, the two new ones too, got a share of the new readers.
    assert all(count >= LATE_READERS // 4 for count in new.values()), figures


def test_a_client_id_retried_on_another_ingest_instance_is_stored_once_and_answered_with_the_first(stack):
    first_ingest, second_ingest = stack.settings.service_urls("ingest")

    def in_history(room, id):
        messages = httpx.get(f"{stack.settings.gateway_url}/stream/rooms/{room}/history", params={"limit": 100},
                             timeout=10).json()["messages"]
        return any(m["id"] == id for m in messages)

    def wait_in_history(room, ids, timeout=30):
        deadline = time.monotonic() + timeout
        while not any(in_history(room, id) for id in ids):
            assert time.monotonic() < deadline, f"{ids} not in {room}'s history after {timeout} s"
            time.sleep(0.05)

    def retries(load):
        room = load.rooms[0]
        # One after the other: stored by the first instance, retried on the second.
        first = post(first_ingest, room, user="retrier", text="sent once", client_id="retry-after")
        assert first.status_code == 201, first.text
        wait_in_history(room, [first.json()["id"]])
        again = post(second_ingest, room, user="retrier", text="sent once", client_id="retry-after")
        assert again.status_code == 201, again.text
        load.posted_aside[room].add("retry-after")

        # At the same moment on both instances: both produce (neither finds it stored yet);
        # the bridge stores the first record and drops the second.
        answers, barrier = {}, threading.Barrier(2)

        def send(url):
            barrier.wait()
            answers[url] = post(url, room, user="racer", text="sent twice at once", client_id="retry-race")

        threads = [threading.Thread(target=send, args=(url,)) for url in (first_ingest, second_ingest)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert [answers[url].status_code for url in (first_ingest, second_ingest)] == [201, 201]
        load.posted_aside[room].add("retry-race")
        raced = sorted({int(answers[url].json()["id"]) for url in answers})
        wait_in_history(room, [str(id) for id in raced])
        settled = post(first_ingest, room, user="racer", text="sent twice at once", client_id="retry-race")
        return room, first.json(), again.json(), raced, settled.json()

    seen = {}

    async def retry_on_both(load):
        seen["answers"] = await asyncio.to_thread(retries, load)
        return {"race_answered_ids": seen["answers"][3], "race_stored_id": seen["answers"][4]["id"]}

    figures = asyncio.run(under_load(stack, retry_on_both))
    report("scale-out-client-id-on-two-ingest-instances", figures)
    assert_every_reader_whole(figures)  # each client_id shown once to every reader of the room
    room, first, again, raced, settled = seen["answers"]
    assert again == first  # the retry is answered with the message first stored: same id, ts, text
    assert int(settled["id"]) == raced[0]  # of two records, the first in the partition is the one stored
