"""stream/lua/lookup.lua on its own (through IndexLookup, which calls it): a history page's
offsets from the room's index, without its deleted messages and looking further back past
them, the next page's offsets for the read ahead, and the client's share checked in the same
call."""

import redis as redis_py

from chat_common.messages import STATE_KEY, deleted_key, offsets_key, pack_offsets
from stream.scrollback import LOOKUP_EXAMINED, ClientBudget, ClientLimited, IndexLookup

ROOM = "lobby"


def _lookup(client, share=1000):
    return IndexLookup(client, ClientBudget(client, share, 60))


def test_the_lookup_skips_deleted_messages_and_goes_further_back_so_a_page_stays_full(redis):
    """Index entries 100..109 and 200..299, every tenth of the latter deleted and all from
    280 on: the lookup answers the newest shown ones."""
    redis.set(offsets_key(ROOM), pack_offsets(list(range(100, 110)) + list(range(200, 300))))
    deleted = list(range(200, 300, 10)) + list(range(280, 300))
    redis.sadd(deleted_key(ROOM), *[str(o) for o in deleted])
    redis.hset(STATE_KEY, "indexed:0", 42)
    lookup = _lookup(redis)

    found = lookup.find(ROOM, 0, 300, 10, 0, 5, "reader")
    shown = [o for o in range(200, 300) if o not in deleted]
    assert found.entries == shown[-10:]
    assert found.oldest == shown[-10] and not found.exhausted and found.indexed == 42
    assert found.ahead == list(range(shown[-10] - 5, shown[-10]))

    found = lookup.find(ROOM, 0, 205, 10, 0, 5, "reader")
    assert found.entries == [104, 105, 106, 107, 108, 109, 201, 202, 203, 204]  # 200 was deleted
    assert not found.exhausted and found.ahead == [100, 101, 102, 103]

    found = lookup.find(ROOM, 0, 103, 10, 0, 5, "reader")
    assert (found.entries, found.exhausted, found.removed, found.ahead) == ([100, 101, 102], True, False, [])

    # Below the log's first offset (retention): neither returned nor looked past.
    found = lookup.find(ROOM, 0, 203, 10, 105, 5, "reader")
    assert (found.entries, found.exhausted, found.removed) == ([105, 106, 107, 108, 109, 201, 202], True, True)


def test_a_partition_not_indexed_and_a_room_without_an_index_say_so(redis):
    found = _lookup(redis).find(ROOM, 3, 100, 5, 0, 5, "reader")
    assert (found.entries, found.indexed, found.oldest, found.exhausted, found.ahead) == ([], None, None, True, [])


def test_a_lookup_past_many_deleted_messages_goes_on_in_the_next_call(redis):
    gone = list(range(1000, 1000 + 3 * LOOKUP_EXAMINED))
    redis.set(offsets_key(ROOM), pack_offsets([10, 11] + gone))
    redis.sadd(deleted_key(ROOM), *[str(o) for o in gone])
    lookup = _lookup(redis)
    below, calls, shown = 10 ** 6, 0, []
    while True:
        found = lookup.find(ROOM, 0, below, 5, 0, 5, "reader")
        calls += 1
        shown = found.entries + shown
        if found.exhausted:
            break
        below = found.oldest
    assert shown == [10, 11] and calls <= 4  # each call looks at LOOKUP_EXAMINED entries at most


class CountingConnection(redis_py.Connection):
    sent = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sent += 1
        return super().send_packed_command(command, check_health)


def test_past_its_share_the_lookup_refuses_the_client_in_the_same_call(redis):
    port = redis.connection_pool.connection_kwargs["port"]
    client = redis_py.Redis(connection_pool=redis_py.ConnectionPool(port=port, connection_class=CountingConnection))
    lookup = _lookup(client, share=10)
    redis.set(lookup.budget.key("greedy"), 10, ex=30)
    redis.set(offsets_key(ROOM), pack_offsets([1, 2, 3]))
    assert lookup.find(ROOM, 0, 100, 5, 0, 5, "another").entries == [1, 2, 3]  # the script loaded
    sent = CountingConnection.sent
    try:
        lookup.find(ROOM, 0, 100, 5, 0, 5, "greedy")
    except ClientLimited as limited:
        assert 0 < limited.retry_after <= 30
    else:
        raise AssertionError("a client past its share was not refused")
    assert CountingConnection.sent - sent == 1
    client.close()


def test_what_pages_read_is_charged_to_their_client_for_a_window(redis):
    budget = ClientBudget(redis, 100, 60)
    budget.charge("reader", 30)
    budget.charge("reader", 20)
    budget.charge("reader", 0)
    assert int(redis.get(budget.key("reader"))) == 50 and 0 < redis.ttl(budget.key("reader")) <= 60
