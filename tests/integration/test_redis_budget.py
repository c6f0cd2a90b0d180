"""One address posting the largest messages as fast as it is allowed, with the chart's Redis
settings (maxmemory 256mb, noeviction) and ingest's default budgets: Redis grows by what the
address's byte budget lets through (not by 33 KB per message, as when the client_id key kept a
second copy of each message), every message it was answered 201 for reaches its room's
readers, and another person's messages in another room keep arriving meanwhile.

Before the byte budgets, the same address filled a 256 MB Redis in about 4 to 5 minutes; Redis
then refused the bridge's writes, acknowledged messages stopped reaching anyone, and ingest
switched its checks off."""

import itertools
import json
import threading
import time

import httpx
from redis import Redis
from support import SseClient, new_room, post, services_beside, stream_url

# ingest's defaults (services/ingest/ingest/config.py), instead of the test stack's high ones
DEFAULT_BUDGETS = {
    "RATE_LIMIT_WINDOW_S": "10", "RATE_LIMIT_USER": "30", "RATE_LIMIT_IP": "300",
    "RATE_LIMIT_IP_BYTES": "262144", "RATE_LIMIT_IP_ROOMS": "10", "RATE_LIMIT_ROOMS_WINDOW_S": "3600",
    "RATE_LIMIT_IP_DAY": "20000", "RATE_LIMIT_IP_BYTES_DAY": "16777216",
}
BUDGET_BYTES, WINDOW_S = 262_144, 10
ATTACK_S = 30
ATTACKER = {"X-Forwarded-For": "10.66.6.6"}
# 4,000 characters of 4 bytes each, sent as UTF-8: a 16 KB body, the largest the API takes
LARGE_TEXT = "\U0001f600" * 3990


def large_post(client, base, room, n):
    body = json.dumps({"user": f"flood{n % 7}", "text": LARGE_TEXT, "client_id": f"flood-{room}-{n}"},
                      ensure_ascii=False).encode()
    return client.post(f"{base}/api/rooms/{room}/messages", content=body, headers={
        **ATTACKER, "Content-Type": "application/json"}), len(body)


def test_one_address_flooding_large_messages_stays_within_its_budget_and_the_chat_flows(stack, tmp_path):
    redis = Redis.from_url(stack.settings.redis_url)
    saved = {key: redis.config_get(key)[key] for key in ("maxmemory", "maxmemory-policy")}
    redis.config_set("maxmemory", "256mb")
    redis.config_set("maxmemory-policy", "noeviction")
    gateway = stack.settings.gateway_url
    victim_room, victim_sent, stop = new_room("victim"), [], threading.Event()
    victim_reader = SseClient(stream_url(gateway, victim_room, history=0))
    flood_rooms = [new_room("flood") for _ in range(12)]
    flood_readers = {room: SseClient(stream_url(gateway, room, history=0)) for room in flood_rooms}

    def victim():  # another person, another address, chatting at 4 messages a second
        for n in itertools.count():
            if stop.is_set():
                return
            response = post(gateway, victim_room, user="vic", text=f"still here {n}",
                            headers={"X-Forwarded-For": "10.77.7.7"})
            assert response.status_code == 201, response.text
            victim_sent.append((response.json()["id"], time.monotonic()))
            time.sleep(0.25)

    try:
        with services_beside(stack, ["ingest"], tmp_path, **DEFAULT_BUDGETS) as urls:
            used_before = redis.info("memory")["used_memory"]
            chatter = threading.Thread(target=victim, daemon=True)
            chatter.start()
            accepted, statuses = {}, []
            deadline, n = time.monotonic() + ATTACK_S, 0
            with httpx.Client(timeout=10) as client:
                while time.monotonic() < deadline:  # as fast as one connection goes, a new room each time
                    room = flood_rooms[n % len(flood_rooms)]
                    response, size = large_post(client, urls["ingest"], room, n)
                    statuses.append(response.status_code)
                    if response.status_code == 201:
                        accepted[response.json()["id"]] = (room, size)
                    else:
                        assert response.status_code == 429, response.text
                        assert int(response.headers["Retry-After"]) >= 1
                    n += 1
            stop.set()
            chatter.join(15)

            # What the budget lets through: at most one window's bytes per window begun.
            accepted_bytes = sum(size for _, size in accepted.values())
            assert accepted_bytes <= BUDGET_BYTES * (ATTACK_S // WINDOW_S + 1), accepted_bytes
            assert len({room for room, _ in accepted.values()}) <= 10  # RATE_LIMIT_IP_ROOMS
            assert statuses.count(429) > 0

            # Every message answered 201 reaches its room's reader, once.
            for room, reader in flood_readers.items():
                ids = [i for i, (r, _) in accepted.items() if r == room]
                assert reader.wait_for(lambda c, ids=ids: {m["id"] for m in c.messages()} >= set(ids), 60), room
                got = [m["id"] for m in reader.messages()]
                assert len(got) == len(set(got)) and got == sorted(got, key=int), room

            # Redis grew by about what was stored (the window's JSON, a client_id key holding an
            # id, 8 bytes of index), not by two copies of each message.
            time.sleep(1)
            grown = redis.info("memory")["used_memory"] - used_before
            assert grown <= 1.5 * accepted_bytes + 2 * 1024 * 1024, (grown, accepted_bytes)

            # The other person's messages all arrived, in order, meanwhile.
            last_id = victim_sent[-1][0]
            assert victim_reader.wait_for(lambda c: last_id in [m["id"] for m in c.messages()], 30)
            assert [m["id"] for m in victim_reader.messages()] == [i for i, _ in victim_sent]
            assert len(victim_sent) >= ATTACK_S * 2  # it kept posting (201s) throughout
    finally:
        stop.set()
        for key, value in saved.items():
            redis.config_set(key, value)
        for reader in [victim_reader, *flood_readers.values()]:
            reader.close()
        redis.close()
