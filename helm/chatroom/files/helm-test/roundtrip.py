"""`helm test`: a message posted to ingest comes back on the room's SSE stream.

Runs in the ingest image with the standard library only. Exits 0 when the message arrived
with the id and text that ingest returned, 1 otherwise.
"""

import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid

INGEST_URL = os.environ["INGEST_URL"].rstrip("/")
STREAM_URL = os.environ["STREAM_URL"].rstrip("/")
TIMEOUT_S = float(os.environ.get("TIMEOUT_S", "60"))


def sse_events(response):
    """Yield (event, id, data) for each event of a text/event-stream response."""
    fields = {}
    for raw in response:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if "data" in fields:
                yield fields.get("event", "message"), fields.get("id"), "\n".join(fields["data"])
            fields = {}
            continue
        if line.startswith(":"):
            continue  # a heartbeat comment
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            fields.setdefault("data", []).append(value)
        else:
            fields[name] = value


def listen(room, received, opened, failed):
    url = f"{STREAM_URL}/stream/rooms/{room}?user=helm-test"
    request = urllib.request.Request(url, headers={"Accept": "text/event-stream"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            opened.set()
            for event, event_id, data in sse_events(response):
                if event == "message":
                    received.append((event_id, json.loads(data)))
    except Exception as exc:  # reported by the main thread
        failed.append(exc)
    finally:
        opened.set()


def post(room, text, client_id, deadline):
    """POST the message, retrying while ingest answers 503 (Kafka not ready yet)."""
    body = json.dumps({"user": "helm-test", "text": text, "client_id": client_id}).encode()
    while True:
        request = urllib.request.Request(
            f"{INGEST_URL}/api/rooms/{room}/messages", data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code != 503 or time.monotonic() > deadline:
                return error.code, error.read().decode("utf-8", "replace")
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(1)


def main():
    deadline = time.monotonic() + TIMEOUT_S
    room = f"helm-test-{uuid.uuid4().hex[:8]}"
    client_id = uuid.uuid4().hex
    text = f"helm test {client_id}"
    received, failed, opened = [], [], threading.Event()
    threading.Thread(target=listen, args=(room, received, opened, failed), daemon=True).start()
    opened.wait(TIMEOUT_S)
    if failed:
        print(f"FAIL: cannot open the stream of room {room}: {failed[0]}")
        return 1

    status, message = post(room, text, client_id, deadline)
    if status != 201:
        print(f"FAIL: POST answered {status}: {message}")
        return 1
    print(f"posted message {message['id']} to room {room}")

    while time.monotonic() < deadline and not failed:
        for event_id, data in received:
            if data.get("client_id") == client_id:
                if event_id != message["id"] or data.get("text") != text:
                    print(f"FAIL: received {event_id} {data}, expected {message}")
                    return 1
                print(f"PASS: message {event_id} came back on the stream")
                return 0
        time.sleep(0.1)
    print(f"FAIL: message {message['id']} did not come back within {TIMEOUT_S:.0f} s {failed or ''}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
