"""The stream deployment's HorizontalPodAutoscaler scaling out and back in on the CPU use
metrics-server reports, under a steady flow through the cluster's ingress, run inside the
cluster's network namespace by tests/cluster/test_node.py:

    python tests/cluster/autoscaling.py BASE_URL NAMESPACE RELEASE CHART

The flow is under_flow.py's (a poster retrying each message until acknowledged, three readers
resuming by Last-Event-ID). The release is upgraded (`helm upgrade --reuse-values`) with a
target CPU use of 1% of the pods' request, at most 3 pods and no scale-down stabilization: what
the readers cost is then over the target and the autoscaler adds a pod; three more readers
connect then, one after the other, which the ingress's round robin spreads over the three pods;
then with a target of 100% the autoscaler removes one, the newest (the ReplicaSet's choice),
and the late reader on it resumes on another. Prints as JSON what
under_flow.py prints for its faults, for the scale-out and the scale-in: the seconds each took
and the longest pauses meanwhile."""

import itertools
import json
import os
import subprocess
import sys
import time

from support import SseClient, new_room, stream_url
from under_flow import FLOW, Poster, ready_pods, settle

SCALED = {"targetCPUUtilizationPercentage": 1, "maxReplicas": 3, "scaleDownStabilizationWindowSeconds": 0}


def helm_upgrade(namespace, release, chart, **values):
    settings = ",".join(f"stream.autoscaling.{name}={value}" for name, value in values.items())
    subprocess.run([os.environ["HELM"], "upgrade", release, chart, "-n", namespace, "--reuse-values",
                    "--set", settings], check=True, capture_output=True, text=True, timeout=300)


def wait_for_pods(namespace, selector, count, timeout=300):
    """Until exactly ``count`` selected pods are Ready and none other is left."""
    deadline = time.monotonic() + timeout
    while True:
        pods = json.loads(subprocess.run([os.environ["KUBECTL"], "get", "pods", "-n", namespace, "-l", selector,
                                          "-o", "json"], check=True, capture_output=True, text=True,
                                         timeout=60).stdout)["items"]
        if len(ready_pods(namespace, selector)) == count and len(pods) == count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{selector}: not {count} pods Ready after {timeout} s")
        time.sleep(1)


def main(base, namespace, release, chart):
    selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component=stream"
    room = new_room("scale")
    readers = [SseClient(stream_url(base, room, user=f"reader-{n}", history=0), reconnect=True)
               for n in range(3)]
    poster = Poster(base, room)
    poster.start()
    steps = []
    try:
        for count, values in ((SCALED["maxReplicas"], SCALED), (2, {"targetCPUUtilizationPercentage": 100})):
            poster.wait_for(len(poster.acked) + FLOW)
            started = time.monotonic()
            helm_upgrade(namespace, release, chart, **values)
            wait_for_pods(namespace, selector, count)
            done = time.monotonic()
            poster.wait_for(len(poster.acked) + FLOW)
            if count == SCALED["maxReplicas"]:  # (the ingress has long since seen the new pod)
                readers += [SseClient(stream_url(base, room, user=f"late-{n}", history=0), reconnect=True)
                            for n in range(count)]
            steps.append({"to": count, "after_s": round(done - started, 1), "window": (started, time.monotonic())})
    finally:
        poster.stopping.set()
        poster.join(60)
    late = readers[3:]
    acked = settle(poster, readers[:3], steps, late=late)
    return {"acked": acked, "readers": [[m["text"] for m in r.messages()] for r in readers[:3]],
            "late_readers": [[m["text"] for m in r.messages()] for r in late],
            "late_connects": [r.connects for r in late],
            "ids_rise": [all(int(a["id"]) < int(b["id"]) for a, b in itertools.pairwise(r.messages()))
                         for r in readers],
            "connects": [r.connects for r in readers], "retries": poster.retries, "steps": steps}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:5])))
