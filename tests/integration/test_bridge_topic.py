"""A bridge that starts before its topic exists consumes it as soon as it is created.

(In a fresh cluster the bridge's pod may well be up before the topic job has run.) A
second bridge runs beside the stack's own, with the same command, on a topic and consumer
group of its own and a Redis database of its own, so that the two never meet.
"""

import time
import uuid

import httpx
import redis
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from support import start_service_beside

from chat_common.messages import Message, history_key


def test_a_bridge_started_before_its_topic_exists_consumes_it_once_created(stack, tmp_path):
    topic = f"chat.late-{uuid.uuid4().hex[:8]}"
    redis_url = stack.settings.redis_url.rsplit("/", 1)[0] + "/1"
    bridge, url = start_service_beside(
        stack, "bridge", tmp_path,
        KAFKA_TOPIC=topic, BRIDGE_GROUP_ID=f"bridge-{topic}", BRIDGE_INSTANCE_ID="", REDIS_URL=redis_url,
    )
    store = redis.Redis.from_url(redis_url)
    try:
        time.sleep(8)  # the bridge is up and looking for its topic
        assert httpx.get(f"{url}/readyz", timeout=5).status_code == 503  # not ready without it
        admin = KafkaAdminClient(bootstrap_servers=stack.settings.kafka_bootstrap)
        try:
            admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            admin.close()
        room = f"late-{uuid.uuid4().hex[:8]}"
        producer = KafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap, acks="all")
        try:
            message = Message(room=room, user="ann", text="first on a new topic", ts=int(time.time() * 1000))
            producer.send(topic, key=room.encode(), value=message.kafka_value()).get(timeout=30)
        finally:
            producer.close()
        deadline = time.monotonic() + 60  # within a minute, not the client's five-minute metadata refresh
        while not store.zcard(history_key(room)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert store.zcard(history_key(room)) == 1
    finally:
        bridge.terminate()
        bridge.wait(30)
        store.flushdb()
        store.close()
