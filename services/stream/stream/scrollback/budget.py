"""Each client address's share of the Kafka records pages read: counted in Redis per window,
checked by the index lookup in the same call as the lookup itself (lookup.py)."""

from redis import Redis


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

    def key(self, client: str | None) -> str:
        """The client's count of records read (string with TTL)."""
        return f"chat:ratelimit:scrollback:{client or 'unknown'}"

    def limited(self, ttl: int | None) -> ClientLimited:
        """The refusal of a client past its share, whose counter expires in ``ttl`` s."""
        return ClientLimited(ttl if ttl and ttl > 0 else self.window_s)

    def charge(self, client: str | None, records: int) -> None:
        """Count ``records`` read for ``client``; the window starts at its first charge."""
        if records:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incrby(self.key(client), records)
            pipe.expire(self.key(client), self.window_s, nx=True)
            pipe.execute()
