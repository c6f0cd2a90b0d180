"""ingest.admission.Admission against a real Redis: calls go over a bounded set of connections
it holds, which a dropped connection does not turn into refusals."""

import threading
import time

from redis import Redis
from support import RedisServer

from chat_common.errors import ApiError
from ingest.admission import ADMISSION_CONNECTIONS, ADMITTED, Admission, Budget


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


def ingest_client(port: int) -> Redis:
    """A client of ``port`` made as ingest makes its own."""
    return Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=1, socket_connect_timeout=1,
                          decode_responses=True)


def test_after_a_restart_of_redis_each_next_call_is_admitted_whatever_was_held(tmp_path):
    """A Redis restart drops every held connection at once: the next calls are admitted, not
    refused one after another until each dead connection has been tried (before: with four
    held, the first two calls got 503)."""
    server, client = RedisServer(tmp_path), None
    try:
        server.start()
        client = ingest_client(server.port)
        admission = Admission(client, retry_after_s=2)
        budgets = [Budget("ip", "192.0.2.5", 1, 100, 60)]
        pause = Redis(port=server.port, single_connection_client=True)
        pause.execute_command("CLIENT", "PAUSE", 300, "ALL")  # four calls at once: four connections held
        pause.close()
        callers = [threading.Thread(target=admission.check, args=("room", budgets)) for _ in range(4)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(10)
        assert client.get("chat:ratelimit:ip:192.0.2.5") == "4"
        server.restart()
        verdicts = []
        for _ in range(4):
            try:
                verdicts.append(admission.check("room", budgets))
            except ApiError as error:
                verdicts.append(error.status)
        assert verdicts == [ADMITTED] * 4
    finally:
        if client is not None:
            client.close()
        server.stop()


def test_calls_reuse_held_connections_instead_of_borrowing_one_each_time(redis_server):
    client = Redis(port=redis_server, decode_responses=True)
    admission = Admission(client, retry_after_s=2)
    budgets = [Budget("ip", "192.0.2.2", 1, 100, 60)]
    for _ in range(5):
        assert admission.check("room", budgets) is ADMITTED
    # one connection made, held between calls (not given back to the pool)
    assert len(client.connection_pool._in_use_connections) == 1
    assert len(client.connection_pool._available_connections) == 0
    assert client.get("chat:ratelimit:ip:192.0.2.2") == "5"
    client.close()


def test_many_client_connections_cost_redis_no_more_than_the_held_connections(redis_server):
    """The gevent worker serves up to 1,000 client connections at once: each may make calls, but
    Redis sees at most ADMISSION_CONNECTIONS connections from the process, whoever holds the
    client connections open."""
    client = Redis(port=redis_server, decode_responses=True)
    admission = Admission(client, retry_after_s=2)
    budgets = [Budget("ip", "192.0.2.3", 1, 1_000, 60)]
    callers = 3 * ADMISSION_CONNECTIONS
    started, done = threading.Barrier(callers + 1), threading.Event()
    verdicts = []

    def call_then_stay() -> None:  # a client connection that posts once and stays open
        started.wait(10)
        verdicts.append(admission.check("room", budgets))
        done.wait(10)

    threads = [threading.Thread(target=call_then_stay) for _ in range(callers)]
    for thread in threads:
        thread.start()
    started.wait(10)
    deadline = time.monotonic() + 10
    while len(verdicts) < callers and time.monotonic() < deadline:
        time.sleep(0.01)
    made = len(client.connection_pool._in_use_connections) + len(client.connection_pool._available_connections)
    done.set()
    for thread in threads:
        thread.join()
    assert verdicts == [ADMITTED] * callers
    assert made <= ADMISSION_CONNECTIONS, made
    assert client.get("chat:ratelimit:ip:192.0.2.3") == str(callers)
    client.close()


def test_a_redis_restarted_since_the_last_call_is_not_a_refusal(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    client = ingest_client(server.port)
    try:
        admission = Admission(client, retry_after_s=2)
        budgets = [Budget("ip", "192.0.2.2", 1, 100, 60)]
        assert admission.check("room", budgets) is ADMITTED
        server.restart()
        assert admission.check("room", budgets) is ADMITTED  # not a 503: the held connection is made again
    finally:
        client.close()
        server.stop()


def test_calls_refused_while_redis_is_away_leave_every_connection_to_be_made_again(tmp_path):
    """Each call made while Redis is away fails to connect (a 503); none may keep one of the
    ADMISSION_CONNECTIONS places, or once Redis is back every call would wait and be refused."""
    server = RedisServer(tmp_path)
    client = ingest_client(server.port)
    admission = Admission(client, retry_after_s=2)
    budgets = [Budget("ip", "192.0.2.4", 1, 1_000, 60)]
    refused = 0
    for _ in range(ADMISSION_CONNECTIONS + 8):  # nothing listens on the port yet
        try:
            admission.check("room", budgets)
        except ApiError as error:
            refused += error.status == 503
    assert refused == ADMISSION_CONNECTIONS + 8
    try:
        server.start()
        started = time.monotonic()
        assert admission.check("room", budgets) is ADMITTED
        assert time.monotonic() - started < 0.5  # made at once, not after waiting for a free place
    finally:
        client.close()
        server.stop()
