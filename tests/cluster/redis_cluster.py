"""Redis Cluster mode on the one-node cluster, run inside the cluster's network namespace by
tests/cluster/test_node.py after the releases were installed with one Redis:

    python tests/cluster/redis_cluster.py BASE_URL NAMESPACE RELEASE REDIS_RELEASE CHARTS VOLUMES REDIS_VALUES

The installation is switched to cluster mode as an operator would: an upgrade of the redis
release to cluster mode is refused by the chart, which says to uninstall it first (a
StatefulSet's claims cannot be added by an upgrade; Redis is a cache, the bridge rebuilds it
from Kafka); so it is uninstalled and installed again with `-f values-cluster.yaml`, then the
app's release upgraded with `redis.cluster.enabled=true` (`--reuse-values`, `--wait`). The
cluster's six claims bind to hostPath PersistentVolumes made here (folders of VOLUMES: the
node has no provisioner), and the nodes request little (the node has two cores).
Then under_flow.py's flow (a poster retrying each message until acknowledged, three readers
resuming by Last-Event-ID) runs in a new room, and the primary that holds the room's slot is
deleted (`--grace-period=0 --force`), twice: once as it is (its new pod, the same node from the
nodes.conf and data on its claim, may be back before the node counts as failed), then with the
node cordoned until the replica has taken the slot over (as if the pod's node were lost), after
which the new pod rejoins as a replica.
Prints as JSON what under_flow.py prints, and for each fault: which pod was the slot's primary
after it, the seconds until the replica took over (when held), until the new pod was Ready and
until every node said `cluster_state:ok` again and knew no failed node; and the seconds the
switch took."""

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from support import SseClient, new_room, stream_url
from under_flow import FLOW, Poster, kubectl, ready_pods, settle, wait_for_replacement

from chat_common.keys import room_partition, tag

NODES = 6  # values-cluster.yaml: three primaries with a replica each
PARTITIONS = 6  # the kafka chart's topic.partitions, which the app's redis.cluster.topicPartitions matches
# The node has two cores that three Kafka brokers and the app share: the nodes' requests are small.
SMALL = "resources.requests.cpu=10m,resources.requests.memory=32Mi"


def helm(*args, check=True):
    result = subprocess.run([os.environ["HELM"], *args], capture_output=True, text=True, timeout=900)
    if check and result.returncode:
        raise RuntimeError(f"helm {' '.join(map(str, args[:2]))}: {result.stderr}")
    return result


def volumes(folder):
    """NODES hostPath PersistentVolumes without a class, for the cluster's claims."""
    items = []
    for n in range(NODES):
        path = Path(folder) / f"redis-{n}"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        items.append({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"redis-volume-{n}"},
                      "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                               "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                               "hostPath": {"path": str(path), "type": "Directory"}}})
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                   "items": items}))


def switch(namespace, release, redis_release, charts, folder, redis_values):
    """One Redis to Redis Cluster, as docs/kubernetes.md tells: the seconds it took. An upgrade
    of the redis release is refused first, by the chart, saying to uninstall it."""
    cluster_values = ["-f", Path(charts) / "redis" / "values-cluster.yaml", *redis_values, "--set", SMALL]
    refused = helm("upgrade", redis_release, Path(charts) / "redis", "-n", namespace, *cluster_values, check=False)
    if refused.returncode == 0 or f"`helm uninstall {redis_release}` first" not in refused.stderr:
        raise RuntimeError(f"an upgrade of the one node to cluster mode not refused by the chart: {refused.stderr}")
    started = time.monotonic()
    helm("uninstall", redis_release, "-n", namespace, "--wait", "--timeout", "5m")
    volumes(folder)
    helm("install", redis_release, Path(charts) / "redis", "-n", namespace, "--wait", "--timeout", "10m",
         *cluster_values)
    helm("upgrade", release, Path(charts) / "chatroom", "-n", namespace, "--reuse-values", "--wait",
         "--timeout", "10m", "--set", f"redis.cluster.enabled=true,redis.cluster.topicPartitions={PARTITIONS}")
    return round(time.monotonic() - started)


def cli(namespace, pod, *args):
    """redis-cli in a node's pod (its REDISCLI_AUTH is the password)."""
    result = kubectl("exec", "-n", namespace, pod, "--", "redis-cli", *args, check=False)
    return result.stdout if result.returncode == 0 else ""


def nodes(namespace, pod):
    """CLUSTER NODES as one node sees it: [(pod name, flags, slot ranges)]."""
    seen = []
    for line in cli(namespace, pod, "cluster", "nodes").splitlines():
        fields = line.split()
        if len(fields) >= 8:
            hostname = fields[1].partition(",")[2]
            seen.append((hostname.split(".")[0], fields[2].split(","), fields[8:]))
    return seen


def holder(namespace, pod, slot):
    """The pod that is the primary serving ``slot``, as ``pod`` sees it, or None."""
    for name, flags, ranges in nodes(namespace, pod):
        if "master" in flags and "fail" not in flags and "fail?" not in flags:
            for part in ranges:
                low, _, high = part.partition("-")
                if low.isdigit() and int(low) <= slot <= int(high or low):
                    return name
    return None


def cluster_ok(namespace, pods):
    """Every node says cluster_state:ok and knows no failed node."""
    for pod in pods:
        if "cluster_state:ok" not in cli(namespace, pod, "cluster", "info"):
            return False
        if any("fail" in flags or "fail?" in flags for _, flags, _ in nodes(namespace, pod)):
            return False
    return True


def wait_until(check, what, timeout=300):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout} s")
        time.sleep(0.2)
    return time.monotonic()


def kill_the_primary(namespace, selector, pods, slot, held, poster):
    """Deletes the pod of ``slot``'s primary (no grace) and waits until its new pod is Ready and
    every node is ok. ``held``: the node is cordoned meanwhile, as if the pod's node were lost,
    so the new pod cannot start before the replica has taken over; uncordoned then."""
    victim = holder(namespace, pods[0], slot)
    witness = next(p for p in pods if p != victim)
    [uid] = [uid for uid, name in ready_pods(namespace, selector).items() if name == victim]
    node = json.loads(kubectl("get", "pod", "-n", namespace, victim, "-o", "json").stdout)["spec"]["nodeName"]
    if held:
        kubectl("cordon", node)
    started = time.monotonic()
    kubectl("delete", "pod", "-n", namespace, victim, "--grace-period=0", "--force", "--wait=false")
    promoted = None
    if held:
        try:
            promoted = wait_until(lambda: holder(namespace, witness, slot) not in (None, victim),
                                  f"no replica took slot {slot} over")
        finally:
            kubectl("uncordon", node)
    wait_for_replacement(namespace, selector, NODES, uid)
    ready = time.monotonic()
    ok = wait_until(lambda: cluster_ok(namespace, pods), "the cluster not ok with every node")
    # The replica, if it took over (the pod silent for cluster.nodeTimeoutMs); else the new pod,
    # back from its claim before that.
    primary = holder(namespace, witness, slot)
    poster.wait_for(len(poster.acked) + FLOW)
    what = "deleted" + (", its node cordoned until its replica took over" if held else "")
    return {"fault": f"{victim}, the primary of the room's slot {slot}, {what}; the slot's primary then: {primary}",
            "failed_over": primary != victim,
            "new_primary_after_s": round(promoted - started, 1) if promoted else None,
            "ready_after_s": round(ready - started, 1), "cluster_ok_after_s": round(ok - started, 1),
            "window": (started, time.monotonic())}


def main(base, namespace, release, redis_release, charts, folder, redis_values):
    switched_s = switch(namespace, release, redis_release, charts, folder, json.loads(redis_values))
    pods = [f"{redis_release}-{n}" for n in range(NODES)]
    room = new_room("shard")
    slot = int(cli(namespace, pods[0], "cluster", "keyslot", tag(room_partition(room, PARTITIONS))).strip())
    readers = [SseClient(stream_url(base, room, user=f"reader-{n}", history=0), reconnect=True)
               for n in range(3)]
    poster = Poster(base, room)
    poster.start()
    selector = f"app.kubernetes.io/instance={redis_release},app.kubernetes.io/component=server"
    faults = []
    try:
        for held in (False, True):
            poster.wait_for(len(poster.acked) + FLOW)
            faults.append(kill_the_primary(namespace, selector, pods, slot, held, poster))
    finally:
        poster.stopping.set()
        poster.join(60)
    acked = settle(poster, readers, faults)
    return {"switched_s": switched_s, "acked": acked, "readers": [[m["text"] for m in r.messages()] for r in readers],
            "ids_rise": [all(int(a["id"]) < int(b["id"]) for a, b in itertools.pairwise(r.messages()))
                         for r in readers],
            "connects": [r.connects for r in readers], "retries": poster.retries, "faults": faults}


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:8])))
