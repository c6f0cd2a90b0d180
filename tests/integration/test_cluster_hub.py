"""The stream's hub in cluster mode (stream/shards.py) against a real Redis Cluster, as a
worker runs it: in a process of its own under gevent, so a connect yields to the other
greenlets as in the stream service."""

import subprocess
import sys
import time

from redis import Redis
from support import free_port, redis_cluster

# What each hub process starts with: gevent's sockets, and a history that holds nothing (the
# hub offers a room's window on join; these tests count live events only).
PREAMBLE = r"""
from gevent import monkey

monkey.patch_all()

import sys

import gevent
from redis import RedisCluster

from chat_common import keys
from chat_common.messages import channel, live_payload
from stream.hub import Client
from stream.shards import ClusterHub


class NoHistory:
    def window(self, room):
        return []

    def deletes_after(self, room, last_id):
        return []

    def changes_after(self, room, last_id):
        return []


keys.configure(keys.CLUSTER, 6)
"""

# A room that joins while its shard's listener is connecting gets its live events (before, it
# subscribed on a second connection that nobody read, and its readers saw nothing until a
# reconnect).
JOINS = PREAMBLE + r"""
cluster = RedisCluster(host="127.0.0.1", port=int(sys.argv[1]))
first, second = [room for room in (f"room-{n}" for n in range(100)) if keys.room_partition(room, 6) == 0][:2]
hub = ClusterHub(cluster, NoHistory())
hub.start()
hub.connected.wait(10)
readers = {room: Client(room, limit=10) for room in (first, second)}
joined = [gevent.spawn(hub.join, readers[first])]
while not hub.listeners or not next(iter(hub.listeners.values())).connected.is_set():
    gevent.sleep(0)  # the listener is connecting (or done): the second room joins now
joined.append(gevent.spawn(hub.join, readers[second]))
gevent.joinall(joined, timeout=10)
for n, room in enumerate((first, second)):
    data = '{"id":"%d","room":"%s","text":"hi","ts":0}' % (n, room)
    cluster.spublish(channel(room), live_payload(data, "message", str(n)))
with gevent.Timeout(3, False):
    while not all(readers[room].backlog for room in readers):
        gevent.sleep(0.01)
# each room: the live events its reader holds, or "refused" (the stream's 503: no subscription)
print(" ".join("refused" if join.exception else str(len(readers[room].backlog))
               for join, room in zip(joined, (first, second))))
"""

# A room's readers on a cluster with a password (as the redis chart runs it) are subscribed on
# its primary and get its live events.
PASSWORD_HUB = PREAMBLE + r"""
url = sys.argv[1]
hub = ClusterHub(RedisCluster.from_url(url, socket_connect_timeout=2), NoHistory())
hub.start()
client = Client("lobby", limit=10)
hub.join(client, timeout=10)  # refused (RedisError) unless the room's subscription is confirmed
offered = []
room = hub.rooms["lobby"]
room.offer = lambda items: offered.extend(items)
publisher = RedisCluster.from_url(url)
deadline = gevent.get_hub().loop.now() + 10
while not offered and gevent.get_hub().loop.now() < deadline:
    publisher.spublish(channel("lobby"), live_payload('{"id": "1", "text": "hello"}', id="1"))
    gevent.sleep(0.1)
print("delivered" if offered else "not delivered")
"""

PASSWORD = "s3cret"


def run_hub(script: str, argument: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script, argument], capture_output=True, text=True, timeout=60)


def test_a_room_joining_while_its_shard_s_listener_connects_gets_its_live_events(tmp_path):
    with redis_cluster(tmp_path) as ports:
        worker = run_hub(JOINS, str(ports[0]))
    assert worker.returncode == 0, worker.stderr
    assert worker.stdout.split() == ["1", "1"], worker.stdout + worker.stderr


def test_a_room_on_a_cluster_with_a_password_is_subscribed_and_gets_its_events(tmp_path):
    """A one-node cluster that holds every slot, with requirepass."""
    port, bus = free_port(), free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-port", str(bus), "--cluster-config-file", str(tmp_path / "nodes.conf"),
         "--requirepass", PASSWORD, "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        node = Redis(port=port, password=PASSWORD, decode_responses=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                node.ping()
                break
            except Exception:
                assert time.monotonic() < deadline and server.poll() is None, "redis-server did not start"
                time.sleep(0.05)
        node.execute_command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
        while node.cluster("info")["cluster_state"] != "ok":
            assert time.monotonic() < deadline, "the one-node cluster is not ok"
            time.sleep(0.05)
        result = run_hub(PASSWORD_HUB, f"redis://:{PASSWORD}@127.0.0.1:{port}/0")
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == "delivered", result.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(10)
