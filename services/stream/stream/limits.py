"""How many streams one client address may open per window (presence churn: every open
joins a room's presence and the directory, every close leaves them).

Counted in Redis, so every worker and instance shares one count per address; when Redis
refuses, the caller refuses the stream (fail closed)."""

from redis import Redis

OPENS_KEY = "chat:ratelimit:stream-opens:{}"  # string: streams the address opened this window; TTL = the window


class StreamOpens:
    def __init__(self, redis: Redis, per_window: int, window_s: int) -> None:
        self.redis = redis
        self.per_window = per_window  # 0: no limit
        self.window_s = window_s

    def admit(self, address: str | None) -> int | None:
        """Count one stream opened by ``address``: None if it is within its share, else the
        seconds until the window ends (the Retry-After). Raises RedisError."""
        if self.per_window <= 0:
            return None
        key = OPENS_KEY.format(address or "unknown")
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, self.window_s, nx=True)
        pipe.ttl(key)
        opened, _, ttl = pipe.execute()
        if int(opened) <= self.per_window:
            return None
        return int(ttl) if int(ttl) > 0 else self.window_s
