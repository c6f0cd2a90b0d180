"""The key map (chat_common/keys.py): one node keeps the plain names; cluster mode puts all
that one partition's apply touches, and the room's live channel, in one slot."""

import pytest
from redis.crc import key_slot

from chat_common import keys
from chat_common.messages import channel, client_id_key, history_key, meta_key, name_hold_key, room_partition
from chat_common.participants import keys_of
from local.redis_cluster import parse_mode


@pytest.fixture
def cluster_mode():
    before = keys.layout()
    keys.configure(keys.CLUSTER, 6)
    yield
    keys.configure(keys.CLUSTER if before.cluster else keys.SINGLE, before.partitions)


def test_one_node_keeps_the_plain_names():
    assert history_key("lobby") == "chat:room:lobby:history"
    assert keys.state_key(3) == "chat:state"
    assert channel("lobby") == "lobby"  # a flask_sse publisher reaches the room
    assert keys.budget_key("ip", "1.2.3.4", "lobby") == "chat:ratelimit:ip:1.2.3.4"
    assert keys.address_budget_key("ip", "1.2.3.4") == "chat:ratelimit:ip:1.2.3.4"
    assert keys.placeholder("lobby") == ""


def test_cluster_mode_puts_a_partition_s_keys_and_its_rooms_channels_in_one_slot(cluster_mode):
    for room in ("lobby", "general", "x", "a-b_c"):
        p = room_partition(room, 6)
        names = [history_key(room), meta_key(room), client_id_key(room, "c{1}"), name_hold_key(room, "Ann"),
                 *keys_of(room), keys.state_key(p), keys.active_rooms_key(p), keys.budget_key("ip", "a", room),
                 keys.placeholder(room), channel(room)]
        assert {key_slot(name.encode()) for name in names} == {key_slot(keys.tag(p).encode())}
        assert keys.room_of_channel(channel(room)) == room
        assert keys.room_of_key(keys.room_key(room, "offsets")) == room
    assert history_key("lobby") == f"chat:{{p{room_partition('lobby', 6)}}}:room:lobby:history"


def test_cluster_mode_spends_an_address_s_budgets_on_one_slot_whatever_the_room(cluster_mode):
    names = [keys.address_budget_key(scope, "2001:db8::1") for scope in ("ip", "ip_bytes", "ip_day")]
    assert len({key_slot(name.encode()) for name in names}) == 1
    assert len({key_slot(keys.address_budget_key("ip", a).encode()) for a in ("1.2.3.4", "1.2.3.5")}) == 2


def test_cluster_mode_publishes_on_shard_channels(cluster_mode):
    assert "redis.call('SPUBLISH'," in keys.script("redis.call('PUBLISH', ARGV[1], ARGV[2])")


def test_the_mode_and_stack_setting_refuse_what_they_do_not_know():
    with pytest.raises(ValueError):
        keys.configure("sentinel", 6)
    assert parse_mode(None) == 0 and parse_mode("single") == 0 and parse_mode("cluster:3") == 3
    for bad in ("cluster", "cluster:2", "cluster:x", "redis:3"):
        with pytest.raises(ValueError):
            parse_mode(bad)
