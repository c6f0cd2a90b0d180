"""Hard faults under a steady flow of messages through the cluster's ingress, run inside the
cluster's network namespace by tests/cluster/test_node.py:

    python tests/cluster/under_flow.py BASE_URL NAMESPACE RELEASE REDIS_RELEASE KAFKA_RELEASE

Three SSE readers that reconnect as a browser's EventSource does (Last-Event-ID) follow a new
room through the ingress; a poster sends a message about every 100 ms through it, retrying each
with its client_id until it is acknowledged (201), as the page does. Once the flow runs, one pod
of ingest, stream, bridge, Redis and a Kafka broker in turn is killed (`kubectl delete
--grace-period=0 --force`: the object goes at once, its containers get no grace), and its
replacement made Ready by its Deployment or StatefulSet; then a node drain's eviction (the
pods/eviction subresource) of one ingest pod is accepted and that of the other, the last one
available, refused by the PodDisruptionBudget (429) until the first is replaced. After each
fault the flow goes on for a while.
Then the poster stops and the readers are given time to catch up. Prints as JSON: the
acknowledged messages' texts ("message <n>"), each reader's in arrival order and whether its
ids rose, how many posts were retried, the readers' connects, the faults and, for each, the
seconds until the replacement was Ready and the longest pauses seen meanwhile: between two
acknowledgements, and between two messages reaching a reader."""

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
FLOW = 20  # messages acknowledged before each fault and after its replacement is ready
REFUSED = "TooManyRequests"  # how kubectl names the eviction API's 429


def kubectl(*args, check=True, input=None):
    return subprocess.run([os.environ["KUBECTL"], *args], check=check, capture_output=True, text=True,
                          input=input, timeout=600)


def selected(namespace, selector):
    return json.loads(kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json").stdout)["items"]


def ready_pods(namespace, selector):
    """The selected pods that are Ready and not being deleted: {uid: name}."""
    return {p["metadata"]["uid"]: p["metadata"]["name"] for p in selected(namespace, selector)
            if "deletionTimestamp" not in p["metadata"]
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))}


def wait_for_replacement(namespace, selector, count, gone, timeout=300):
    """Until ``count`` selected pods are Ready again, none of them the pod whose uid is ``gone``."""
    deadline = time.monotonic() + timeout
    while True:
        now = ready_pods(namespace, selector)
        if len(now) >= count and gone not in now:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{selector}: {len(now)} pods Ready {timeout} s after a fault, not {count}")
        time.sleep(0.5)


def kill(namespace, selector):
    """Deletes one of the selected Ready pods with no grace period and without waiting for its
    containers to end (the API object goes at once), then waits for its replacement."""
    before = ready_pods(namespace, selector)
    uid, name = next(iter(sorted(before.items(), key=lambda item: item[1])))
    kubectl("delete", "pod", "-n", namespace, name, "--grace-period=0", "--force", "--wait=false")
    wait_for_replacement(namespace, selector, len(before), uid)
    return f"killed {name}"


def evict(namespace, name):
    """The Eviction API, as `kubectl drain` calls it: (accepted, what the server said)."""
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace}}
    result = kubectl("create", "--raw", f"/api/v1/namespaces/{namespace}/pods/{name}/eviction", "-f", "-",
                     check=False, input=json.dumps(eviction))
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def evict_the_last_available(namespace, selector, timeout=120):
    """Evicts one of the two selected Ready pods (retried while the budget's status has not yet
    caught up with an earlier fault), then the other, now the last one available: the
    PodDisruptionBudget must refuse that (429) while the first is being replaced."""
    before = ready_pods(namespace, selector)
    assert len(before) == 2, f"{selector}: {sorted(before.values())} Ready, not two"
    (first_uid, first), (_, last) = sorted(before.items(), key=lambda item: item[1])
    deadline = time.monotonic() + timeout
    while True:
        accepted, said = evict(namespace, first)
        if accepted:
            break
        if REFUSED not in said or time.monotonic() > deadline:
            raise RuntimeError(f"eviction of {first}: {said}")
        time.sleep(1)
    accepted, said = evict(namespace, last)
    if accepted or REFUSED not in said:
        raise RuntimeError(f"eviction of the last available pod {last} not refused with 429: {said}")
    wait_for_replacement(namespace, selector, len(before), first_uid)
    return f"evicted {first}; eviction of {last} refused: {said}"


class Poster(threading.Thread):
    def __init__(self, base, room):
        super().__init__(daemon=True)
        self.base, self.room = base, room
        self.acked, self.retries = [], 0
        self.acked_at = []  # time.monotonic() of each acknowledgement
        self.stopping = threading.Event()

    def run(self):
        i = 0
        while not self.stopping.is_set():
            while True:  # the same message, the same client_id, until acknowledged
                try:
                    response = post(self.base, self.room, user=f"poster-{i % USERS}", text=f"message {i}",
                                    client_id=f"{self.room}-{i}")
                    if response.status_code == 201:
                        self.acked_at.append(time.monotonic())
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


def longest_pause(times, start, end):
    """The longest time between two events of ``times`` (and from ``start`` to the first) in
    [start, end], in seconds."""
    inside = [start] + [t for t in times if start < t <= end]
    return round(max((b - a for a, b in itertools.pairwise(inside)), default=end - start), 1)


def settle(poster, readers, windows, late=()):
    """Once the flow has stopped: waits until every reader has every acknowledged message, and
    every ``late`` reader (one that connected mid-flow, without history) the last one: what was
    sent before it connected never comes, and waiting for it would only run out the timeout.
    Closes them all, gives each window (a dict with "window": (start, end)) its longest pause
    between acknowledgements and between messages to a reader, and returns the acknowledged texts."""
    acked = list(poster.acked)
    for reader in readers:
        reader.wait_for(lambda c: set(acked) <= {m["text"] for m in c.messages()}, timeout=120)
    for reader in late:
        reader.wait_for(lambda c: acked[-1:] == [m["text"] for m in c.messages()][-1:], timeout=120)
    everyone = [*readers, *late]
    for reader in everyone:
        reader.close()
    for window in windows:
        start, end = window.pop("window")
        window["longest_ack_pause_s"] = longest_pause(poster.acked_at, start, end)
        window["longest_read_pause_s"] = max(longest_pause(r.message_arrivals(), start, end) for r in everyone)
    return acked


def main(base, namespace, release, redis_release, kafka_release):
    room = new_room("flow")
    readers = [SseClient(stream_url(base, room, user=f"reader-{n}", history=0), reconnect=True)
               for n in range(3)]
    poster = Poster(base, room)
    poster.start()

    def component(instance, name):
        return f"app.kubernetes.io/instance={instance},app.kubernetes.io/component={name}"

    faults = [(kill, component(release, "ingest")), (kill, component(release, "stream")),
              (kill, component(release, "bridge")), (kill, component(redis_release, "server")),
              (kill, component(kafka_release, "broker")), (evict_the_last_available, component(release, "ingest"))]
    done = []
    try:
        for fault, selector in faults:
            poster.wait_for(len(poster.acked) + FLOW)
            started = time.monotonic()
            what = fault(namespace, selector)
            recovered = time.monotonic()
            poster.wait_for(len(poster.acked) + FLOW)
            done.append({"fault": what, "ready_after_s": round(recovered - started, 1),
                         "window": (started, time.monotonic())})
    finally:
        poster.stopping.set()
        poster.join(60)
    acked = settle(poster, readers, done)
    return {"acked": acked, "readers": [[m["text"] for m in r.messages()] for r in readers],
            "ids_rise": [all(int(a["id"]) < int(b["id"]) for a, b in itertools.pairwise(r.messages()))
                         for r in readers],
            "connects": [r.connects for r in readers], "retries": poster.retries, "faults": done}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:6])))
