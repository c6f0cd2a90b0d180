"""A pod of each service deleted under a steady flow of messages through the cluster's ingress,
run inside the cluster's network namespace by tests/cluster/test_node.py:

    python tests/cluster/under_flow.py BASE_URL NAMESPACE RELEASE

Three SSE readers that reconnect as a browser's EventSource does (Last-Event-ID) follow a new
room through the ingress; a poster sends a message about every 100 ms through it, retrying each
with its client_id until it is acknowledged (201), as the page does. Once the flow runs, one pod
of ingest, then of stream, then of bridge is deleted (`kubectl delete pod`, which waits until it
is gone), its replacement made Ready by its Deployment or StatefulSet, and the flow goes on for
a while through the new pod.
Then the poster stops and the readers are given time to catch up. Prints as JSON: the
acknowledged messages' texts ("message <n>"), each reader's in arrival order and whether its
ids rose, how many posts were retried, the readers' connects and the pods deleted."""

import itertools
import json
import os
import subprocess
import sys
import threading
import time

import httpx
from support import SseClient, new_room, post, stream_url

PACE = 0.1  # seconds between two messages
USERS = 5  # posters' names in turn: each stays under ingest's per-user rate limit (30 per 10 s)
FLOW = 20  # messages acknowledged before each deletion and after each new pod is ready


def kubectl(*args):
    return subprocess.run([os.environ["KUBECTL"], *args], check=True, capture_output=True, text=True,
                          timeout=600).stdout


def ready_pods(namespace, selector):
    """The uids of the selected pods that are Ready and not being deleted."""
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))["items"]
    return {p["metadata"]["uid"] for p in pods
            if "deletionTimestamp" not in p["metadata"]
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))}


def delete_one_and_wait_for_its_replacement(namespace, selector, timeout=300):
    """Deletes one of the selected pods (kubectl waits until it is gone), then waits until as many
    pods as were Ready before are Ready again, none of them the deleted one. Returns its name."""
    before = ready_pods(namespace, selector)
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json"))["items"]
    victim = next(p for p in pods if p["metadata"]["uid"] in before)
    kubectl("delete", "pod", "-n", namespace, victim["metadata"]["name"])
    deadline = time.monotonic() + timeout
    while True:
        now = ready_pods(namespace, selector)
        if len(now) >= len(before) and victim["metadata"]["uid"] not in now:
            return victim["metadata"]["name"]
        if time.monotonic() > deadline:
            raise TimeoutError(f"{selector}: {len(now)} pods Ready {timeout} s after a deletion, "
                               f"not {len(before)}")
        time.sleep(0.5)


class Poster(threading.Thread):
    def __init__(self, base, room):
        super().__init__(daemon=True)
        self.base, self.room = base, room
        self.acked, self.retries = [], 0
        self.stopping = threading.Event()

    def run(self):
        i = 0
        while not self.stopping.is_set():
            while True:  # the same message, the same client_id, until acknowledged
                try:
                    response = post(self.base, self.room, user=f"poster-{i % USERS}", text=f"message {i}",
                                    client_id=f"{self.room}-{i}")
                    if response.status_code == 201:
                        self.acked.append(response.json()["text"])
                        break
                except httpx.HTTPError:
                    pass
                self.retries += 1
                time.sleep(PACE)
            i += 1
            time.sleep(PACE)

    def wait_for(self, count, timeout=300):
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(self.acked)} messages acknowledged after {timeout} s, not {count}")
            time.sleep(PACE)


def main(base, namespace, release):
    room = new_room("flow")
    readers = [SseClient(stream_url(base, room, user=f"reader-{n}", history=0), reconnect=True)
               for n in range(3)]
    poster = Poster(base, room)
    poster.start()
    deleted = []
    try:
        for component in ("ingest", "stream", "bridge"):
            poster.wait_for(len(poster.acked) + FLOW)
            selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component={component}"
            deleted.append(delete_one_and_wait_for_its_replacement(namespace, selector))
            poster.wait_for(len(poster.acked) + FLOW)
    finally:
        poster.stopping.set()
        poster.join(60)
    acked = list(poster.acked)
    for reader in readers:
        reader.wait_for(lambda c: set(acked) <= {m["text"] for m in c.messages()}, timeout=120)
        reader.close()
    return {"acked": acked, "readers": [[m["text"] for m in r.messages()] for r in readers],
            "ids_rise": [all(int(a["id"]) < int(b["id"]) for a, b in itertools.pairwise(r.messages()))
                         for r in readers],
            "connects": [r.connects for r in readers], "retries": poster.retries, "deleted": deleted}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
