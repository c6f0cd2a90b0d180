"""Fixed-window rate limits kept in Redis, shared by every ingest process and pod."""

import logging

from redis.exceptions import RedisError

from ingest import metrics

log = logging.getLogger(__name__)

# One round trip, one command: count the request in every window (KEYS, one per scope),
# start a window's clock at its first request, and return the 1-based index of the first
# window over its limit (ARGV[1 + i]) with its seconds left, or {0, 0}.
COUNT_AND_CHECK = """
local window = tonumber(ARGV[1])
local over, wait = 0, 0
for i, key in ipairs(KEYS) do
    local count = redis.call('INCR', key)
    redis.call('EXPIRE', key, window, 'NX')
    if over == 0 and count > tonumber(ARGV[1 + i]) then
        over = i
        wait = redis.call('TTL', key)
    end
end
return {over, wait}
"""


class RateLimiter:
    def __init__(self, redis, window_s, limits):
        """``limits``: scope -> most requests per window (e.g. {"user": 30, "ip": 300})."""
        self.window_s = window_s
        self.limits = limits
        self._count_and_check = redis.register_script(COUNT_AND_CHECK)

    def check(self, identities):
        """Count one request for each ``scope -> identity``; return (scope, seconds to
        wait) for the first limit exceeded, or None. If Redis is down, let it through:
        the chat stays up and the skip is counted."""
        scopes = list(identities)
        keys = [f"chat:ratelimit:{scope}:{identities[scope]}" for scope in scopes]
        try:
            over, wait = self._count_and_check(keys, [self.window_s, *(self.limits[s] for s in scopes)])
        except RedisError as error:
            metrics.RATE_LIMIT_ERRORS.inc()
            log.warning("rate limit skipped: redis unavailable", extra={"error": str(error)})
            return None
        if over:
            return scopes[over - 1], wait if wait > 0 else self.window_s
        return None
