"""ingest/lua/budgets.lua: one client address's budgets in a call of their own (cluster mode):
every counter is added to, refused ones included, and the first over its limit refuses."""

from ingest.admission import ADDRESS_BUDGETS


def test_the_first_counter_over_its_limit_refuses_and_every_counter_counts(redis):
    spend = redis.register_script(ADDRESS_BUDGETS)
    names = ["chat:ratelimit:ip:a", "chat:ratelimit:ip_bytes:a"]
    assert spend(names, [1, 2, 60, 100, 150, 60]) == [0]
    assert spend(names, [1, 2, 60, 100, 150, 60]) == [3, 2, 60]  # 200 bytes over 150
    assert spend(names, [1, 2, 60, 10, 150, 60]) == [3, 1, 60]  # the third request: the first refuses
    assert [int(redis.get(name)) for name in names] == [3, 210]
    assert 0 < redis.ttl(names[0]) <= 60
    assert spend(names, [0, 2, 60, 0, 150, 60]) == [0]  # nothing spent: nothing counted, nothing over
    assert [int(redis.get(name)) for name in names] == [3, 210]
