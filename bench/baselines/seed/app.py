"""The seed design, after datafireball's "Small Chat Room using Kafka and Flask" (2020):
a Flask app whose /sendmsg produces the message to Kafka with kafka-python, whose
/broadcast (called by consumer.py for every message) publishes it with flask-sse's stock
``sse.publish``, and which serves flask-sse's stock stream endpoint at /stream.

Kept as the blog built it: no ids, no history, no resume, no heartbeats. Configuration by
environment only, so that the benchmark can point it at its Kafka and Redis.
"""

import json
import os

from flask import Flask, request
from flask_sse import sse  # type: ignore[import-untyped]  # (no type information)
from kafka import KafkaProducer

TOPIC = os.environ.get("SEED_TOPIC", "seed.chat")

app = Flask(__name__)
app.config["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
app.register_blueprint(sse, url_prefix="/stream")

_producer = None


def producer():
    global _producer
    if _producer is None:
        _producer = KafkaProducer(
            bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092").split(","),
            value_serializer=lambda value: json.dumps(value).encode(),
        )
    return _producer


@app.post("/sendmsg")
def sendmsg():
    body = request.get_json(force=True)
    producer().send(TOPIC, {"room": body.get("room", "sse"), "user": body["user"], "message": body["message"]})
    return "ok"


@app.post("/broadcast")
def broadcast():
    body = request.get_json(force=True)
    sse.publish({"user": body["user"], "message": body["message"]}, type="message", channel=body.get("room", "sse"))
    return "ok"
