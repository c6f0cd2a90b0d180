"""The chat through the stack on Redis Cluster (STACK_REDIS=cluster:3, REDIS_MODE=cluster):
posts, edits and reactions reach the live readers of rooms of every partition (so every
shard) once and in order, history pages and a resume by id answer from the room's shard."""

import concurrent.futures
import itertools
import json
from urllib.parse import quote

import httpx
from support import SseClient, history, new_room, post, services_beside, session_headers, stream_url, wait_applied

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

        # an edit and a reaction of a message in each room: its readers get both once, reads fold them
        mine = session_headers(base)
        for room in rooms:
            target = post(base, room, text="helo", headers=mine).json()["id"]
            edited = httpx.patch(f"{base}/api/rooms/{room}/messages/{target}", json={"text": "hello"},
                                 headers=mine, timeout=10)
            assert edited.status_code == 200, edited.text
            reacted = httpx.put(f"{base}/api/rooms/{room}/messages/{target}/reactions/{quote('👍')}",
                                json={"user": "ann"}, headers=mine, timeout=10)
            assert reacted.status_code == 204, reacted.text
            for reader in readers[room]:
                assert reader.wait_for(lambda c: [e.event for e in c.received if e.event in ("edit", "reaction")]
                                       == ["edit", "reaction"], timeout=30)
                [edit_data] = [json.loads(e.data) for e in reader.received if e.event == "edit"]
                assert edit_data["id"] == target and edit_data["text"] == "hello"
            shown = next(m for m in history(base, room)["messages"] if m["id"] == target)
            assert shown["text"] == "hello" and shown["reactions"] == {"👍": {"count": 1, "users": ["ann"]}}
    finally:
        for client in itertools.chain.from_iterable(readers.values()):
            client.close()


def test_an_address_s_request_budget_holds_across_rooms_of_every_partition(cluster_stack, tmp_path):
    limit = 4
    with services_beside(cluster_stack, ["ingest"], tmp_path, RATE_LIMIT_IP=str(limit)) as urls:
        base, me = urls["ingest"], {"X-Forwarded-For": "10.251.3.9"}
        rooms = rooms_of_every_partition()  # six rooms, one per partition, over three shards
        statuses = [post(base, room, user=f"b{i}", headers=me).status_code for i, room in enumerate(rooms)]
        assert statuses == [201] * limit + [429] * (len(rooms) - limit)
        assert post(base, rooms[-1], user="other", headers={"X-Forwarded-For": "10.251.3.10"}).status_code == 201


def test_a_room_opens_on_a_shard_whose_last_room_was_left(cluster_stack):
    """A worker's listener of a shard is subscribed to nothing once its last room's readers
    leave; the next room of that shard must still open (it once waited for a subscription
    that no one confirmed, and every stream of the shard got 503 from then on)."""
    base = cluster_stack.settings.gateway_url
    first = new_room("alone")
    partition = room_partition(first, PARTITIONS)
    rooms = [first]
    while len(rooms) < 12:  # more than the stack's stream workers: some worker serves two in turn
        room = new_room("alone")
        if room_partition(room, PARTITIONS) == partition:
            rooms.append(room)
    for room in rooms:
        with httpx.stream("GET", stream_url(base, room, history=0), timeout=15) as response:
            assert response.status_code == 200, (room, response.status_code, response.read())
            assert next(response.iter_lines()) is not None  # its position, once subscribed
