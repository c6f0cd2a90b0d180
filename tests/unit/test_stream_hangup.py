"""stream/hangup.py and stream/params.py on their own: a reader's close is seen at once, and
ids are ASCII digits only."""

import socket

import gevent
import pytest
from gevent import socket as gsocket

from stream.hangup import watch_hangup
from stream.params import decimal


def test_the_peers_close_is_seen_at_once_and_only_once():
    ours, theirs = gsocket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    seen = []
    stop = watch_hangup(ours, lambda: seen.append("closed"))
    gevent.sleep(0.05)
    assert seen == []  # an open, quiet connection: nothing
    theirs.close()
    with gevent.Timeout(1):
        while not seen:
            gevent.sleep(0.01)
    gevent.sleep(0.05)
    assert seen == ["closed"]
    stop()
    ours.close()


def test_a_stopped_watch_calls_nothing():
    ours, theirs = gsocket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    seen = []
    watch_hangup(ours, lambda: seen.append("closed"))()
    theirs.close()
    gevent.sleep(0.05)
    assert seen == []
    ours.close()


def test_no_socket_no_watch():
    watch_hangup(None, lambda: pytest.fail("called"))()


@pytest.mark.parametrize(("raw", "value"), [
    ("0", 0), ("42", 42), ("9" * 19, int("9" * 19)),
    ("", None), ("9" * 20, None), ("²", None), ("①", None), ("٣", None), ("１", None), ("-1", None), (" 1", None),
])
def test_a_number_is_one_to_19_ascii_digits(raw, value):
    assert decimal(raw) == value


def test_a_stream_is_refused_when_redis_cannot_count_its_opens():
    """Fail closed: no count, no stream (503 with Retry-After), never an uncounted open."""
    import dataclasses

    from support import free_port

    from stream.app import create_app
    from stream.config import Config

    config = dataclasses.replace(Config.from_env(), redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(config)
    app.extensions["chat.hub"].join = lambda client: pytest.fail("joined the room uncounted")
    response = app.test_client().get("/stream/rooms/lobby?user=ann")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "redis_unavailable"
    assert int(response.headers["Retry-After"]) >= 1
