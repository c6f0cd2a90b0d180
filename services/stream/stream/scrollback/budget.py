"""Each client address's share of the Kafka records pages read: counted in Redis per window,
checked by the index lookup in the same call as the lookup itself (lookup.py)."""

from redis import Redis

from chat_common import keys


class ClientLimited(Exception):
    """This client caused its share of Kafka reads for now."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class ClientBudget:
    """A client address may cause ``records`` records read per ``window_s`` (then 429): its
    pages and the reads ahead they started are charged once done."""

    def __init__(self, redis: Redis, records: int, window_s: int) -> None:
        self.redis = redis
        self.records = records
        self.window_s = window_s

    def key(self, client: str | None, room: str | None = None) -> str:
        """The client's count of records read (string with TTL); read with ``room``'s index,
        in its slot in cluster mode (chat_common/keys.py)."""
        return keys.budget_key("scrollback", client or "unknown", room)

    def limited(self, ttl: int | None) -> ClientLimited:
        """The refusal of a client past its share, whose counter expires in ``ttl`` s."""
        return ClientLimited(ttl if ttl and ttl > 0 else self.window_s)

    def charge(self, client: str | None, records: int, room: str | None = None) -> None:
        """Count ``records`` read for ``client`` (from ``room``'s past); the window starts at its
        first charge."""
        if records:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incrby(self.key(client, room), records)
            pipe.expire(self.key(client, room), self.window_s, nx=True)
            pipe.execute()
