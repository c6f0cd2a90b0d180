"""The floor under ingest's CPU per POST: Flask on gunicorn with none of the service's own code,
served by ``ingest_floor.py`` at the gateway's ingest address.

``POST /api/rooms/<room>/messages`` parses the JSON body and answers 201; with
``FLOOR_PRODUCE=1`` it also produces the body to the service's topic, keyed by the room, with
the service's producer settings (``ingest.producer.settings``: acks=all, idempotent), one
producer per worker process, and waits for the acknowledgement before answering. With
``FLOOR_ADMIT=1`` as well, it first makes the service's admission call (``ingest.admission``:
the retry, name and budget checks of a POST in one shared Redis round trip), the one check
ingest cannot drop: what is left of the service is validation, logging and metrics.
"""

import json
import os
from collections.abc import Callable

from flask import Flask, request
from kafka import KafkaProducer

from chat_common import redis_client
from ingest.admission import Admission, Budgets
from ingest.config import Config
from ingest.producer import settings

config = Config.from_env()
app = Flask(__name__)
producer: KafkaProducer | None = None
admission: Admission | None = None
budgets = Budgets(config)
# Made when the worker loads the app (after gevent's patching, on the gevent worker).
if os.environ.get("FLOOR_PRODUCE") == "1":
    producer = KafkaProducer(**settings(config))
    producer.partitions_for(config.kafka_topic)
if os.environ.get("FLOOR_ADMIT") == "1":
    redis_client.configure(config)
    admission = Admission(redis_client.connect(config.redis_url, socket_timeout=1, socket_connect_timeout=1,
                                               decode_responses=True), config.retry_after_s)


@app.post("/api/rooms/<room>/messages")
def post(room: str) -> tuple[dict[str, object], int]:
    body = request.get_json()
    if admission is not None:
        user = str(body["user"])
        verdict = admission.check(room, budgets.post(user, request.remote_addr or "", request.content_length or 0),
                                  client_id=body.get("client_id"), name=user)
        if verdict.limited or verdict.name_taken or verdict.replay_id is not None:
            return {"refused": room}, 429
    if producer is not None:
        record = producer.send(config.kafka_topic, key=room.encode(), value=json.dumps(body).encode())
        record.get(timeout=config.produce_timeout_s + 1)
    return {"room": room}, 201


def bare(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
    """The route above without Flask: read and parse the body, answer 201 with the room."""
    stream = environ["wsgi.input"]
    length = int(str(environ.get("CONTENT_LENGTH") or 0))
    json.loads(stream.read(length))  # type: ignore[attr-defined]
    room = str(environ["PATH_INFO"]).split("/")[3]
    body = json.dumps({"room": room}).encode()
    start_response("201 CREATED", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
