"""The chat through the stack on Redis Cluster (STACK_REDIS=cluster:3, REDIS_MODE=cluster):
posts reach the live readers of rooms of every partition (so every shard) once and in
order, history pages and a resume by id answer from the room's shard."""

import concurrent.futures
import itertools

from support import SseClient, history, new_room, post, stream_url, wait_applied

from chat_common.keys import room_partition

PARTITIONS = 6  # the cluster stack's topic


def rooms_of_every_partition():
    rooms = {}
    while len(rooms) < PARTITIONS:
        room = new_room("shard")
        rooms.setdefault(room_partition(room, PARTITIONS), room)
    return list(rooms.values())


def test_posts_reach_live_readers_on_every_shard_once_in_order_and_resume_by_id(cluster_stack):
    base = cluster_stack.settings.gateway_url
    rooms = rooms_of_every_partition()
    readers = {room: [SseClient(stream_url(base, room, history=0)) for _ in range(2)] for room in rooms}
    try:
        jobs = [(rooms[i % len(rooms)], f"message {i}") for i in range(120)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(lambda job: post(base, job[0], user=f"u{hash(job) % 5}", text=job[1]), jobs))
        assert all(r.status_code == 201 for r in responses), {r.status_code for r in responses}
        acked = {room: sorted(int(r.json()["id"]) for r in responses if r.json()["room"] == room) for room in rooms}
        for room, clients in readers.items():
            for reader in clients:
                assert reader.wait_messages(len(acked[room]), timeout=60)
                assert [int(m["id"]) for m in reader.messages()] == acked[room]  # once, in Kafka order

        room = rooms[0]
        ids = [str(i) for i in acked[room]]
        wait_applied(base, room, ids[-1])
        page = history(base, room, limit=100)
        assert [m["id"] for m in page["messages"]] == ids
        resumed = SseClient(stream_url(base, room, last_event_id=ids[5]))
        try:
            assert resumed.wait_messages(len(ids) - 6)
            assert [m["id"] for m in resumed.messages()] == ids[6:]  # exactly the messages after it
        finally:
            resumed.close()
    finally:
        for client in itertools.chain.from_iterable(readers.values()):
            client.close()
