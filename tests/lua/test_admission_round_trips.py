"""ingest.admission.Admission against a real Redis: the calls of one process share round trips
on the one connection it holds (ingest/round_trips.py), and whatever happens to that connection
a call is either answered by Redis or refused (503), never let through unchecked."""

import threading
import time
from collections.abc import Callable

from prometheus_client import REGISTRY
from redis import Redis
from support import RedisServer

from chat_common.errors import ApiError
from ingest.admission import ADMITTED, Admission, Budget


def ingest_client(port: int) -> Redis:
    """A client of ``port`` made as ingest makes its own."""
    return Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=1, socket_connect_timeout=1,
                          decode_responses=True)


def admitted_once(port: int, address: str) -> tuple[Redis, Admission, list[Budget]]:
    """A client, an Admission made as ingest makes it, and an address's budget it spent once."""
    client = ingest_client(port)
    admission = Admission(client, retry_after_s=2)
    budgets = [Budget("ip", address, 1, 1_000, 60)]
    assert admission.check("room", budgets) is ADMITTED
    return client, admission, budgets


def round_trips() -> tuple[float, float]:
    """(round trips made, calls they carried) by this process so far."""
    return (REGISTRY.get_sample_value("chat_ingest_admission_round_trips_total") or 0.0,
            REGISTRY.get_sample_value("chat_ingest_admission_calls_total") or 0.0)


def connections(port: int) -> int:
    """Clients connected to the Redis on ``port``, other than the one asking."""
    probe = Redis(port=port, single_connection_client=True)
    try:
        return int(probe.info("clients")["connected_clients"]) - 1
    finally:
        probe.close()


def call_at_once(admission: Admission, budgets: list[Budget], callers: int,
                 first: Callable[[], None] | None = None) -> list[object]:
    """``callers`` threads calling at the same moment (``first`` run once all are ready, just
    before); their verdicts, or the status refusing them."""
    started, verdicts = threading.Barrier(callers, action=first), []

    def call() -> None:
        started.wait(10)
        try:
            verdicts.append(admission.check("room", budgets))
        except ApiError as error:
            verdicts.append(error.status)

    threads = [threading.Thread(target=call) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    return verdicts


def test_concurrent_calls_share_round_trips_on_one_connection(redis_server):
    """The gevent worker serves up to 1,000 client connections at once: each may make calls, but
    Redis sees one connection from the process, and calls made while a round trip is under way
    go together in the next one, each counted once."""
    client, admission, budgets = admitted_once(redis_server, "192.0.2.3")
    before_connections = connections(redis_server)
    trips, calls = round_trips()

    def pause_redis() -> None:  # the first round trip waits 500 ms (of a 1 s timeout): the others queue
        pause = Redis(port=redis_server, single_connection_client=True)
        pause.execute_command("CLIENT", "PAUSE", 500, "ALL")
        pause.close()

    verdicts = call_at_once(admission, budgets, 96, first=pause_redis)
    assert verdicts == [ADMITTED] * 96
    assert connections(redis_server) == before_connections  # no connection made for the burst
    trips_now, calls_now = round_trips()
    assert calls_now - calls == 96
    assert trips_now - trips <= 4, f"96 calls took {trips_now - trips:.0f} round trips"
    assert client.get("chat:ratelimit:ip:192.0.2.3") == "97"
    client.close()


def test_a_connection_dropped_by_redis_is_made_again_and_nothing_is_counted_twice(redis_server):
    client, admission, budgets = admitted_once(redis_server, "192.0.2.1")
    killed = client.client_kill_filter(_type="normal", skipme=True)  # every connection but this one
    assert killed >= 1
    assert admission.check("room", budgets) is ADMITTED  # reconnected, not a 503
    assert client.get("chat:ratelimit:ip:192.0.2.1") == "2"
    client.close()


def test_scripts_flushed_from_redis_are_loaded_again_not_refused(redis_server):
    client, admission, budgets = admitted_once(redis_server, "192.0.2.6")
    client.script_flush()
    assert call_at_once(admission, budgets, 8) == [ADMITTED] * 8
    assert client.get("chat:ratelimit:ip:192.0.2.6") == "9"
    client.close()


def test_after_a_restart_of_redis_each_next_call_is_admitted(tmp_path):
    """A Redis restart drops the held connection and forgets the scripts: the next calls, made
    at once, are admitted (the connection made again, the script loaded), not refused."""
    server, client = RedisServer(tmp_path), None
    try:
        server.start()
        client = ingest_client(server.port)
        admission = Admission(client, retry_after_s=2)
        budgets = [Budget("ip", "192.0.2.5", 1, 100, 60)]
        assert call_at_once(admission, budgets, 4) == [ADMITTED] * 4
        server.restart()
        assert call_at_once(admission, budgets, 4) == [ADMITTED] * 4
        assert client.get("chat:ratelimit:ip:192.0.2.5") == "4"  # a restarted Redis starts empty
    finally:
        if client is not None:
            client.close()
        server.stop()


def test_a_stalled_redis_refuses_the_calls_in_bounded_time_then_they_are_admitted_again(tmp_path):
    """Fails closed: calls waiting on a Redis that does not answer are refused (503) once the
    socket timeout has passed, not let through and not left hanging; once it answers again, the
    next call is admitted on a new connection."""
    server, client = RedisServer(tmp_path), None
    try:
        server.start()
        client, admission, budgets = admitted_once(server.port, "192.0.2.7")
        server.pause()
        started = time.monotonic()
        verdicts = call_at_once(admission, budgets, 8)
        waited_s = time.monotonic() - started
        server.resume()
        assert verdicts == [503] * 8
        assert waited_s < 5, waited_s  # the callers wait three socket timeouts at most, then are refused
        assert admission.check("room", budgets) is ADMITTED
    finally:
        if client is not None:
            client.close()
        server.stop()


def test_calls_refused_while_redis_is_away_are_admitted_at_once_when_it_is_back(tmp_path):
    server = RedisServer(tmp_path)
    client = ingest_client(server.port)
    admission = Admission(client, retry_after_s=2)
    budgets = [Budget("ip", "192.0.2.4", 1, 1_000, 60)]
    assert call_at_once(admission, budgets, 40) == [503] * 40  # nothing listens on the port yet
    try:
        server.start()
        started = time.monotonic()
        assert admission.check("room", budgets) is ADMITTED
        assert time.monotonic() - started < 0.5  # made at once, not after a wait
    finally:
        client.close()
        server.stop()
