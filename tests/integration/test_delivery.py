"""Messages reach every client of their room, once, in Kafka order, and no one else."""

import concurrent.futures
import itertools

from support import SseClient, new_room, post, stream_url


def test_a_message_reaches_both_clients_of_its_room_and_not_another_room(stack):
    base = stack.settings.gateway_url
    room_a, room_b = new_room("a"), new_room("b")
    a1 = SseClient(stream_url(base, room_a, user="ann"))
    a2 = SseClient(stream_url(base, room_a, user="bob"))
    b1 = SseClient(stream_url(base, room_b, user="cid"))
    try:
        response = post(base, room_a, user="ann", text="hello room a")
        assert response.status_code == 201
        stored = response.json()
        assert a1.wait_messages(1) and a2.wait_messages(1)
        assert a1.messages() == [stored]
        assert a2.messages() == [stored]
        # room b hears its own message, and never room a's
        post(base, room_b, user="cid", text="hello room b")
        assert b1.wait_messages(1)
        assert [m["text"] for m in b1.messages()] == ["hello room b"]
    finally:
        for client in (a1, a2, b1):
            client.close()


def test_concurrent_floods_arrive_exactly_once_in_kafka_order(stack):
    base = stack.settings.gateway_url
    rooms = [new_room("flood") for _ in range(3)]
    clients = {room: [SseClient(stream_url(base, room, history=0)) for _ in range(2)] for room in rooms}
    try:
        jobs = [(rooms[i % 3], f"message {i}") for i in range(500)]
        with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
            responses = list(pool.map(lambda job: post(base, job[0], user=f"sender{hash(job) % 5}", text=job[1]), jobs))
        assert all(r.status_code == 201 for r in responses), {r.status_code for r in responses}
        acked = {room: sorted(int(r.json()["id"]) for r in responses if r.json()["room"] == room) for room in rooms}
        for room, readers in clients.items():
            for reader in readers:
                assert reader.wait_messages(len(acked[room]), timeout=60)
                ids = [int(m["id"]) for m in reader.messages()]
                assert ids == acked[room]  # every acknowledged message, once, in Kafka order
    finally:
        for client in itertools.chain.from_iterable(clients.values()):
            client.close()
