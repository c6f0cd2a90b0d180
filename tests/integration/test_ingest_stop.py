"""A stopping ingest does not wait for connections kept alive between two requests (a proxy's
pool holds them for up to a minute): it closes them and exits, as a rollout expects."""

import time

import httpx
from support import new_room, start_service_beside, wait_until_ready

STOPPED_WITHIN_S = 10  # gunicorn's graceful timeout for ingest is 20 s: waiting for an idle connection takes all of it


def test_a_stopping_ingest_closes_its_idle_keep_alive_connections(stack, tmp_path):
    process, base = start_service_beside(stack, "ingest", tmp_path)
    try:
        wait_until_ready([base], 60)
        with httpx.Client(base_url=base, timeout=10) as client:  # one connection, kept alive as a proxy's pool does
            posted = client.post(f"/api/rooms/{new_room('stop')}/messages", json={"user": "ann", "text": "hi"})
            assert posted.status_code == 201
            started = time.monotonic()
            process.terminate()
            process.wait(30)
            assert time.monotonic() - started < STOPPED_WITHIN_S
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
