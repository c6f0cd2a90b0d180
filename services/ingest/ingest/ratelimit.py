"""Fixed-window rate limits kept in Redis, shared by every ingest process and pod."""

import logging

from redis.exceptions import RedisError

from ingest import metrics

log = logging.getLogger(__name__)


class RateLimiter:
    def __init__(self, redis, window_s, limits):
        """``limits``: scope -> most requests per window (e.g. {"user": 30, "ip": 300})."""
        self.redis = redis
        self.window_s = window_s
        self.limits = limits

    def check(self, identities):
        """Count one request for each ``scope -> identity``; return (scope, seconds to
        wait) for the first limit exceeded, or None. If Redis is down, let it through:
        the chat stays up and the skip is counted."""
        pipe = self.redis.pipeline(transaction=False)
        keys = []
        for scope, identity in identities.items():
            key = f"chat:ratelimit:{scope}:{identity}"
            keys.append(scope)
            pipe.incr(key)
            pipe.expire(key, self.window_s, nx=True)
            pipe.ttl(key)
        try:
            results = pipe.execute()
        except RedisError as error:
            metrics.RATE_LIMIT_ERRORS.inc()
            log.warning("rate limit skipped: redis unavailable", extra={"error": str(error)})
            return None
        for index, scope in enumerate(keys):
            count, _, ttl = results[index * 3 : index * 3 + 3]
            if count > self.limits[scope]:
                return scope, ttl if ttl and ttl > 0 else self.window_s
        return None
