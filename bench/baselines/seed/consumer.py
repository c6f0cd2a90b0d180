"""The seed design's consumer script: read the topic and POST every message to /broadcast."""

import json
import os

import requests
from kafka import KafkaConsumer

TOPIC = os.environ.get("SEED_TOPIC", "seed.chat")
BROADCAST_URL = os.environ.get("SEED_BROADCAST_URL", "http://127.0.0.1:5000/broadcast")


def main():
    consumer = KafkaConsumer(
        TOPIC,
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092").split(","),
        group_id=os.environ.get("SEED_GROUP", "seed-consumer"),
        value_deserializer=lambda value: json.loads(value),
    )
    for record in consumer:
        requests.post(BROADCAST_URL, json=record.value)


if __name__ == "__main__":
    main()
