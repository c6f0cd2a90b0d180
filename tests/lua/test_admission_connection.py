"""ingest.admission.Admission against a real Redis: each thread's calls go over a connection
it holds, which a dropped connection does not turn into refusals."""

import subprocess
import threading
import time

from redis import Redis
from redis.exceptions import RedisError
from support import free_port

from ingest.admission import ADMITTED, Admission, Budget


def test_a_held_connection_dropped_by_redis_is_made_again_and_nothing_is_counted_twice(redis_server):
    client = Redis(port=redis_server, decode_responses=True)
    admission = Admission(client, retry_after_s=2)
    budgets = [Budget("ip", "192.0.2.1", 1, 100, 60)]
    assert admission.check("room", budgets) is ADMITTED

    killed = client.client_kill_filter(_type="normal", skipme=True)  # every connection but this one
    assert killed >= 1
    assert admission.check("room", budgets) is ADMITTED  # reconnected, not a 503
    assert client.get("chat:ratelimit:ip:192.0.2.1") == "2"
    client.close()


def test_each_thread_makes_its_calls_on_one_connection_of_its_own(redis_server):
    client = Redis(port=redis_server, decode_responses=True)
    admission = Admission(client, retry_after_s=2)
    budgets = [Budget("ip", "192.0.2.2", 1, 100, 60)]
    admitted, done = threading.Barrier(4), threading.Event()  # the three threads and this one

    def admit_three() -> None:
        for _ in range(3):
            assert admission.check("room", budgets) is ADMITTED
        admitted.wait(10)
        done.wait(10)

    threads = [threading.Thread(target=admit_three) for _ in range(3)]
    for thread in threads:
        thread.start()
    admitted.wait(10)
    # three threads, three connections held (none given back to the pool between calls)
    assert len(client.connection_pool._in_use_connections) == 3
    assert len(client.connection_pool._available_connections) == 0
    done.set()
    for thread in threads:
        thread.join()
    assert client.get("chat:ratelimit:ip:192.0.2.2") == "9"
    client.close()


def test_a_redis_restarted_since_the_last_call_is_not_a_refusal(tmp_path):
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(tmp_path)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    client = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=1, socket_connect_timeout=1,
                            decode_responses=True)  # as ingest makes it
    try:
        admission = Admission(client, retry_after_s=2)
        budgets = [Budget("ip", "192.0.2.2", 1, 100, 60)]
        while not _answers(port):
            time.sleep(0.05)
        assert admission.check("room", budgets) is ADMITTED
        server.terminate()
        server.wait(10)
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        while not _answers(port):
            time.sleep(0.05)
        assert admission.check("room", budgets) is ADMITTED  # not a 503: the held connection is made again
    finally:
        client.close()
        server.terminate()
        server.wait(10)


def _answers(port: int) -> bool:
    """Redis answers on ``port`` (a client of its own: the tested one's pool stays as it was)."""
    probe = Redis(port=port, single_connection_client=True)
    try:
        return bool(probe.ping())
    except RedisError:
        return False
    finally:
        probe.close()
