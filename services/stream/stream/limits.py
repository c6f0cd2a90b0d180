"""How many streams one client address may open per window (presence churn: every open
joins a room's presence and the directory, every close leaves them), and how many it may
hold open at once (every open stream holds a socket, a greenlet and a queue here).

Counted in Redis, so every worker and instance shares one count per address; when Redis
refuses, the caller refuses the stream (fail closed). The cap on open streams is the
service's own, so it holds behind any ingress (the gateway's limit_conn, or an ingress
annotation, only where that proxy is in front)."""

import time
import uuid

from redis import Redis

from chat_common.lua import lua_source

OPENS_KEY = "chat:ratelimit:stream-opens:{}"  # string: streams the address opened this window; TTL = the window
OPEN_KEY = "chat:streams:open:{}"  # sorted set: the address's open streams (connection id -> expiry)


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


class OpenStreams:
    """The streams one address holds open at once. Each holds a place, given back when it
    ends. The worker refreshes all of its places together, in one pipeline at most every
    ttl_s / 3 (the first heartbeat after that does it), so the cost is a round trip per
    worker per heartbeat, not one per stream: refreshed one by one, 1,000 streams of a
    worker beating together held its Redis pool for seconds and streams failed to get a
    connection. A crashed worker's places expire after ttl_s."""

    def __init__(self, redis: Redis, per_address: int, ttl_s: int) -> None:
        self.redis = redis
        self.per_address = per_address  # 0: no cap
        self.ttl_s = ttl_s
        self._take = redis.register_script(lua_source("stream/connections.lua"))
        self._held: dict[str, str] = {}  # this worker's places: token -> its address's key
        self._refreshed_at = time.monotonic()

    def take(self, address: str | None) -> str | None:
        """A place for one more stream of ``address``: its token (to refresh and give back),
        "" when there is no cap, None when the address holds the cap already. Raises RedisError."""
        if self.per_address <= 0:
            return ""
        token, now, key = uuid.uuid4().hex, time.time(), OPEN_KEY.format(address or "unknown")
        taken = self._take(keys=[key], args=[now, now + self.ttl_s, token, self.per_address, self.ttl_s * 2])
        if not taken:
            return None
        self._held[token] = key
        return token

    def refresh(self) -> None:
        """Keep every place of this worker alive, if the last refresh is ttl_s / 3 old."""
        if not self._held or time.monotonic() - self._refreshed_at < self.ttl_s / 3:
            return
        self._refreshed_at = time.monotonic()
        held, expiry = list(self._held.items()), time.time() + self.ttl_s
        pipe = self.redis.pipeline(transaction=False)
        for token, key in held:
            pipe.zadd(key, {token: expiry}, xx=True)
        for key in {key for _, key in held}:
            pipe.expire(key, self.ttl_s * 2)
        pipe.execute()

    def give_back(self, token: str) -> None:
        key = self._held.pop(token, None)
        if key is not None:
            self.redis.zrem(key, token)
