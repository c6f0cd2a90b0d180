"""The stream's cluster hub on a Redis Cluster with a password (as the redis chart runs it): a
room's readers are subscribed on its primary and get its live events. A one-node cluster that
holds every slot, with requirepass; the hub runs in a process of its own, under gevent as in
the stream service."""

import subprocess
import sys
import time

from redis import Redis
from support import free_port

PASSWORD = "s3cret"

HUB = """
from gevent import monkey
monkey.patch_all()
import sys
import gevent
from redis import Redis, RedisCluster
from chat_common import keys
from chat_common.messages import channel, live_payload
from stream.hub import Client
from stream.shards import ClusterHub

class NoHistory:
    def window(self, room):
        return []
    def deletes_after(self, room, last_id):
        return []

keys.configure("cluster", 6)
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


def test_a_room_on_a_cluster_with_a_password_is_subscribed_and_gets_its_events(tmp_path):
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
        result = subprocess.run([sys.executable, "-c", HUB, f"redis://:{PASSWORD}@127.0.0.1:{port}/0"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == "delivered", result.stderr[-2000:]
    finally:
        server.terminate()
        server.wait(10)
