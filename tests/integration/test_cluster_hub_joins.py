"""The stream's hub in cluster mode (stream/shards.py) against a real Redis Cluster, as a
worker runs it: gevent's sockets, so a connect yields to the other greenlets. A room that
joins while its shard's listener is connecting gets its live events (before, it subscribed
on a second connection that nobody read, and its readers saw nothing until a reconnect)."""

import subprocess
import sys

from support import redis_cluster

WORKER = r"""
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


def test_a_room_joining_while_its_shard_s_listener_connects_gets_its_live_events(tmp_path):
    with redis_cluster(tmp_path) as ports:
        worker = subprocess.run([sys.executable, "-c", WORKER, str(ports[0])], capture_output=True, text=True,
                                timeout=60)
    assert worker.returncode == 0, worker.stderr
    assert worker.stdout.split() == ["1", "1"], worker.stdout + worker.stderr
