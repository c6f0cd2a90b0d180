"""The key map in cluster mode (chat_common/keys.py), against a real Redis Cluster of three
primaries with a replica each: every script and MULTI/EXEC the services run, with rooms of
every partition, is accepted (Redis Cluster refuses a call whose keys are in several slots:
CROSSSLOT) and does what it does on one node; live events reach a sharded subscriber."""

import json
import time

import pytest
from redis import RedisCluster
from support import redis_cluster

from bridge.index import PREPEND_SCRIPT, TRIM_SCRIPT
from bridge.store import WRITTEN, Store
from chat_common import keys
from chat_common.messages import (
    Edit,
    Message,
    Reaction,
    Tombstone,
    changes_key,
    channel,
    edits_key,
    history_key,
    offsets_key,
    pack_offsets,
    reactions_key,
    room_partition,
)
from chat_common.private import Access, Membership, PrivateRooms, RoomRecord
from ingest.admission import NEW_ROOM, Admission, Budget
from ingest.typing_signals import Typing
from stream.config import Config as StreamConfig
from stream.directory import Directory
from stream.history import History
from stream.limits import OpenStreams, StreamOpens
from stream.presence import Presence
from stream.scrollback.budget import ClientBudget
from stream.scrollback.lookup import IndexLookup

PARTITIONS = 6


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    before = keys.layout()
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as ports:
        keys.configure(keys.CLUSTER, PARTITIONS)
        client = RedisCluster(host="127.0.0.1", port=ports[0])
        try:
            yield client
        finally:
            client.close()
            keys.configure(keys.CLUSTER if before.cluster else keys.SINGLE, before.partitions)


def rooms_of_every_partition(prefix):
    """Two rooms of each partition."""
    found = {}
    n = 0
    while len(found) < 2 * PARTITIONS:
        room = f"{prefix}-{n}"
        partition = room_partition(room, PARTITIONS)
        if sum(1 for p in found.values() if p == partition) < 2:
            found[room] = partition
        n += 1
    return found


def test_a_partition_s_keys_share_a_slot_and_partitions_spread_over_the_shards(cluster):
    slots = {}
    for room, partition in rooms_of_every_partition("slot").items():
        names = [keys.room_key(room, "history"), keys.room_key(room, "cid:x"), keys.budget_key("ip", "a", room),
                 edits_key(room), reactions_key(room), changes_key(room),
                 keys.state_key(partition), keys.active_rooms_key(partition), keys.rooms_took_part_key(partition),
                 keys.placeholder(room), channel(room)]
        assert len({cluster.cluster_keyslot(name) for name in names}) == 1
        slots[partition] = cluster.keyslot(keys.state_key(partition))
    owners = {cluster.nodes_manager.get_node_from_slot(slot).name for slot in slots.values()}
    assert len(owners) == 3  # six partitions over three primaries


def test_the_bridge_applies_a_batch_of_every_partition_and_publishes_on_the_shards(cluster):
    rooms = rooms_of_every_partition("apply")
    pubsub = cluster.pubsub()
    for room in rooms:
        pubsub.ssubscribe(channel(room))
    store = Store(cluster, history_max=100, history_max_bytes=1 << 20, client_id_ttl_s=60, room_idle_ttl_s=3600)
    now = int(time.time() * 1000)
    for partition in set(rooms.values()):
        store.mark_rebuilding(partition, -1, PARTITIONS)
    items = []
    for i, (room, partition) in enumerate(rooms.items()):
        items.append((partition, Message(room, "ann", f"hello {i}", now, client_id=f"c{i}", id=str(10 + i)), True))
    first_room, first_partition = next(iter(rooms.items()))
    items.append((first_partition, Tombstone(first_room, "10", now, id="100"), True))
    assert store.apply(items)[:-1] == [WRITTEN] * len(rooms)
    assert store.apply(items) != [WRITTEN] * len(items)  # a replay changes nothing
    assert store.unready_partitions(range(PARTITIONS)) == []
    for room in list(rooms)[1:]:
        assert len(cluster.zrange(history_key(room), 0, -1)) == 1
    assert cluster.zrange(history_key(first_room), 0, -1) == []  # deleted
    received = {}
    deadline = time.monotonic() + 10
    while len(received) < len(rooms) and time.monotonic() < deadline:
        for node in list(pubsub.node_pubsub_mapping):
            message = pubsub.get_sharded_message(target_node=cluster.get_node(node_name=node), timeout=0.1)
            if message and message["type"] == "smessage":
                received[keys.room_of_channel(message["channel"].decode())] = message["data"]
    assert set(received) == set(rooms)
    pubsub.close()

    history = History(cluster, StreamConfig.from_env())
    i, room = next((i, room) for i, room in enumerate(rooms) if rooms[room] != first_partition)
    assert [row[1] for row in history.window(room)] == [str(10 + i)]
    assert [row[1] for row in history.deletes_after(first_room, -1)] == ["100"]
    # the snapshot (one MULTI/EXEC: the partition's state and the room's window) on its shard
    assert history.head(room) == max(10 + j for j, other in enumerate(rooms) if rooms[other] == rooms[room])
    assert history._snapshot(room, lambda pipe: pipe.zcard(history_key(room))).rest == [1]


def test_ingest_admits_a_post_with_its_room_s_checks_and_its_address_s_budgets(cluster):
    seed = cluster.get_default_node()
    decoded = RedisCluster(host=seed.host, port=seed.port, decode_responses=True)  # as ingest's client
    admission = Admission(decoded, 1.0)
    budgets = [Budget("user", "ann", 1, 10, 60), Budget("ip", "1.2.3.4", 1, 100, 60),
               Budget("ip_rooms", "1.2.3.4", NEW_ROOM, 10, 60)]
    for room in rooms_of_every_partition("admit"):
        verdict = admission.check(room, budgets, client_id="c1", name="ann", session="s1", took_part="digest")
        assert not verdict.name_taken and verdict.limited is None and verdict.replay_id is None
        verdict = admission.check(room, [Budget("ip", "1.2.3.4", 1, 100, 60)])  # no client_id, no name
        assert verdict.limited is None
        cluster.set(keys.room_key(room, "cid:c2"), "7")
        assert admission.check(room, budgets, client_id="c2").replay_id == "7"
        assert Typing(decoded, 2.0).signal(room, "ann") == 0
    decoded.close()


def test_an_address_s_budget_holds_across_rooms_of_every_partition(cluster):
    seed = cluster.get_default_node()
    decoded = RedisCluster(host=seed.host, port=seed.port, decode_responses=True)  # as ingest's client
    admission = Admission(decoded, 1.0)
    rooms = list(rooms_of_every_partition("address"))  # twelve rooms over six partitions
    limit = 4
    verdicts = [admission.check(room, [Budget("user", f"u{i}", 1, 100, 60), Budget("ip", "5.6.7.8", 1, limit, 60)])
                for i, room in enumerate(rooms)]
    assert [v.limited is None for v in verdicts] == [True] * limit + [False] * (len(rooms) - limit)
    assert all(v.limited[0] == "ip" for v in verdicts[limit:])
    # a replay is answered before the address's budget is spent, so it is never counted
    cluster.set(keys.room_key(rooms[0], "cid:r1"), "7")
    assert admission.check(rooms[0], [Budget("ip", "9.9.9.9", 1, 1, 60)], client_id="r1").replay_id == "7"
    assert cluster.get(keys.address_budget_key("ip", "9.9.9.9")) is None
    decoded.close()


def test_the_stream_s_scripts_and_snapshots_run_on_the_room_s_shard(cluster):
    presence = Presence(cluster, 30)
    directory = Directory(cluster, cache_s=0)
    lookup = IndexLookup(cluster, ClientBudget(cluster, 1000, 60))
    opens, open_streams = StreamOpens(cluster, 100, 60), OpenStreams(cluster, 10, 30)
    rooms = rooms_of_every_partition("stream")
    admission = Admission(cluster, 1.0)
    seats = []
    for room, partition in rooms.items():
        admission.check(room, took_part="digest")  # a post: the room gets addresses
        seat = presence.join(room, "ann", session="s1", address="digest")
        assert presence.users(room) == ["ann"]
        seats.append(seat)
        directory.took_part(room, "other")
        cluster.set(offsets_key(room), pack_offsets([3, 5, 9]))
        found = lookup.find(room, partition, below=10, count=2, beginning=0, ahead=1, client="1.2.3.4")
        assert found.entries == [5, 9] and found.ahead == [3]
    assert opens.admit("1.2.3.4") is None
    assert open_streams.take("1.2.3.4") is not None
    listed = {entry["room"] for entry in directory.rooms()}  # counted on every partition's shard
    assert listed >= set(rooms)  # people in them
    for seat in seats:
        presence.leave(seat)
        assert presence.users(seat.room) == []


def test_the_indexer_and_private_rooms_scripts_keep_to_one_slot(cluster):
    rooms = rooms_of_every_partition("index")
    prepend, trim = cluster.register_script(PREPEND_SCRIPT), cluster.register_script(TRIM_SCRIPT)
    by_partition = {}
    for room, partition in rooms.items():
        by_partition.setdefault(partition, []).append(room)
    for partition, mine in by_partition.items():
        cluster.hset(keys.state_key(partition), f"indexed:{partition}", 20)
        assert prepend(keys=[keys.state_key(partition), *map(offsets_key, mine)],
                       args=[partition, 20, 10, *(pack_offsets([11, 12]) for _ in mine)]) == 1
        for room in mine:
            cluster.hset(edits_key(room), mapping={"5": "{}", "12": "{}"})
            cluster.hset(reactions_key(room), mapping={"5": "{}", "12": "{}"})
            # the log begins at 12: the room's index, edits and reactions in one call
            trim(keys=[offsets_key(room), edits_key(room), reactions_key(room)], args=[12])
            # the newest removed offset stays, as the mark that the room lost older messages
            assert cluster.get(offsets_key(room)) == pack_offsets([11, 12])
            assert cluster.hkeys(edits_key(room)) == cluster.hkeys(reactions_key(room)) == [b"12"]
    private = PrivateRooms(cluster)
    room = "_" + "a" * 32
    assert private.apply(RoomRecord(room, "s:owner", "hash"), 1)
    assert private.apply(Membership(room, "s:guest", True), 2)
    cluster.hset("chat:private:state", "ready", "1")
    assert private.access(room, "s:guest") == Access.MEMBER


def test_edits_and_reactions_apply_on_the_room_s_shard_and_every_read_folds_them(cluster):
    rooms = rooms_of_every_partition("change")
    pubsub = cluster.pubsub()
    for room in rooms:
        pubsub.ssubscribe(channel(room))
    store = Store(cluster, history_max=100, history_max_bytes=1 << 20, client_id_ttl_s=60, room_idle_ttl_s=3600)
    now = int(time.time() * 1000)
    for partition in set(rooms.values()):
        store.mark_rebuilding(partition, -1, PARTITIONS)
    posts, changes = [], []
    for i, (room, partition) in enumerate(rooms.items()):
        target = str(100 + i)
        posts.append((partition, Message(room, "ann", "helo", now, id=target), True))
        changes += [(partition, Edit(room, target, "hello", 1.5, now, id=str(200 + i)), True),
                    (partition, Reaction(room, target, "👍", "bob", True, now, id=str(300 + i)), True)]
    assert store.apply(posts) == [WRITTEN] * len(posts)
    assert store.apply(changes) == [WRITTEN] * len(changes)  # one batch of every partition, no CROSSSLOT
    events = {}
    deadline = time.monotonic() + 10
    while sum(map(len, events.values())) < 3 * len(rooms) and time.monotonic() < deadline:
        for node in list(pubsub.node_pubsub_mapping):
            message = pubsub.get_sharded_message(target_node=cluster.get_node(node_name=node), timeout=0.1)
            if message and message["type"] == "smessage":
                value = json.loads(message["data"])
                room = keys.room_of_channel(message["channel"].decode())
                events.setdefault(room, []).extend(e["type"] for e in (value if isinstance(value, list) else [value]))
    pubsub.close()
    assert events == {room: ["message", "edit", "reaction"] for room in rooms}

    history = History(cluster, StreamConfig.from_env())
    expected = {"text": "hello", "edited_ts": 1.5, "reactions": {"👍": {"count": 1, "users": ["bob"]}}}
    for i, room in enumerate(rooms):
        [(data, _)] = history.window(room)
        assert {k: json.loads(data).get(k) for k in expected} == expected
        page = history.before(room, None, 10)
        assert {k: json.loads(page.messages[0]).get(k) for k in expected} == expected
        assert [event for event, _, _ in history.changes_after(room, 100 + i)] == ["edit", "reaction"]
        # a resume from before the edit: the snapshot's MULTI/EXEC reads the changes with the window
        replay, _, _ = history.opening(room, last_id=100 + i, count=0)
        assert [event for event, _, _ in replay] == ["edit", "reaction"]
