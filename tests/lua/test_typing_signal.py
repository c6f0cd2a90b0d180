"""ingest/lua/typing.lua on its own: one signal per name and interval, published."""

from chat_common.lua import lua_source

SIGNAL = lua_source("ingest/typing.lua")


def test_a_signal_is_published_once_per_interval(redis):
    signal = redis.register_script(SIGNAL)
    listener = redis.pubsub()
    listener.subscribe("room")
    listener.get_message(timeout=1)  # the subscription's confirmation
    assert signal(keys=["typing:ann"], args=[2000, "room", "payload"]) == 0
    assert 0 < signal(keys=["typing:ann"], args=[2000, "room", "second"]) <= 2000
    assert listener.get_message(timeout=1)["data"] == b"payload"
    assert listener.get_message(timeout=0.2) is None  # the refused one was not published
    listener.close()
