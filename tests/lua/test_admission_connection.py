"""ingest.admission.Admission against a real Redis: each thread's calls go over a connection
it holds, which a dropped connection does not turn into refusals."""

import threading

from redis import Redis

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
