"""A user's view of the chat through the cluster's ingress, run inside the cluster's network
namespace (the ingress listens only there) by tests/cluster/test_node.py:

    python tests/cluster/through_ingress.py BASE_URL READERS MESSAGES

Fetches the page (once Traefik has loaded the route: until then it answers 404); connects
READERS SSE readers to a new room; posts MESSAGES messages one at a time, each only once every
reader has received the one before (so a stream the ingress held back until the response ended
would stop the run at its first message); prints what happened as JSON: the page's status and
type, the acknowledged ids, each reader's ids in arrival order, and the first message a reader
did not get before the next post, if any."""

import json
import sys
import time

import httpx
from support import SseClient, new_room, post, stream_url

WAIT = 30  # seconds a reader may take to get a message before the run counts it as held back


def main(base, readers, messages):
    page = httpx.get(f"{base}/", timeout=10)
    deadline = time.monotonic() + 60
    while page.status_code == 404 and time.monotonic() < deadline:  # the route not loaded yet
        time.sleep(0.5)
        page = httpx.get(f"{base}/", timeout=10)
    room = new_room("ingress")
    clients = [SseClient(stream_url(base, room, user=f"reader-{n}", history=0)) for n in range(readers)]
    acked, held_back = [], None
    try:
        for i in range(messages):
            response = post(base, room, user="ann", text=f"message {i}")
            if response.status_code != 201:
                held_back = {"post": i, "status": response.status_code, "body": response.text}
                break
            message_id = response.json()["id"]
            acked.append(message_id)
            for n, client in enumerate(clients):
                def arrived(c, message_id=message_id):
                    return message_id in [m["id"] for m in c.messages()]

                if not client.wait_for(arrived, WAIT):
                    held_back = {"reader": n, "id": message_id}
                    break
            if held_back:
                break
    finally:
        for client in clients:
            client.close()
    return {
        "page": {"status": page.status_code, "type": page.headers.get("content-type", ""),
                 "title": "<title>Chatroom</title>" in page.text},
        "stream": {"status": [c.status for c in clients],
                   "type": [c.response_headers.get("content-type", "") for c in clients]},
        "acked": acked,
        "readers": [[m["id"] for m in c.messages()] for c in clients],
        "held_back": held_back,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
