"""What ingest asks Redis before it produces, in one round trip (one Lua call):

1. a retried ``client_id`` the bridge has stored already: answer with that message;
2. a name held by a present session (the stream service holds a session's name while it is
   connected to the room, stream/presence.py): another session may not post under it (409);
3. the fixed-window rate limits, shared by every ingest process and pod: count this request
   in every window, refuse it if one is over its limit (429).

Each check is optional (a delete counts rate limits only, a typing signal checks the name
only), and they run in this order, so a replay is never counted and a refused name is not
counted either. If Redis does not answer, every check is skipped (counted): the chat stays up.
"""

import logging
import time
from dataclasses import dataclass

from redis.exceptions import RedisError

from chat_common.messages import client_id_key, name_hold_key
from ingest import metrics

log = logging.getLogger(__name__)

# KEYS: the client_id key if ARGV[1] == '1', then the name-hold key if ARGV[2] == '1', then
#       one rate-limit counter per scope
# ARGV: [1] look up a client_id?, [2] check a name?, [3] now (epoch s), [4] this request's
#       session ('' for none), [5] the window (s), [5 + i] the limit of the i-th counter
# Returns {1, stored message} | {2} (the name is held by another session) |
#         {3, i, seconds left} (the i-th limit is exceeded; counted all the same) | {0}
ADMIT = """
local k = 1
if ARGV[1] == '1' then
  local stored = redis.call('GET', KEYS[k])
  if stored then return {1, stored} end
  k = k + 1
end
if ARGV[2] == '1' then
  local holders = redis.call('ZRANGEBYSCORE', KEYS[k], ARGV[3], '+inf')
  if #holders > 0 then
    local mine = false
    for _, member in ipairs(holders) do
      if ARGV[4] ~= '' and string.sub(member, 1, #ARGV[4] + 1) == ARGV[4] .. '\\n' then mine = true end
    end
    if not mine then return {2} end
  end
  k = k + 1
end
local window = tonumber(ARGV[5])
local over, wait = 0, 0
for i = k, #KEYS do
  local count = redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], window, 'NX')
  if over == 0 and count > tonumber(ARGV[5 + i - k + 1]) then
    over = i - k + 1
    wait = redis.call('TTL', KEYS[i])
  end
end
if over > 0 then return {3, over, wait} end
return {0}
"""

STORED, NAME_TAKEN, LIMITED = 1, 2, 3


@dataclass(frozen=True)
class Verdict:
    stored: str | None = None  # the message already stored for the retried client_id
    name_taken: bool = False
    limited: tuple | None = None  # (scope, seconds to wait)


ADMITTED = Verdict()


class Admission:
    def __init__(self, redis, window_s, limits):
        """``limits``: scope -> most requests per window (e.g. {"user": 30, "ip": 300})."""
        self.window_s = window_s
        self.limits = limits
        self._admit = redis.register_script(ADMIT)

    def check(self, room, limits=None, client_id=None, name=None, session=None):
        """Run the checks asked for: ``client_id`` (a retry?), ``name`` (held by a session
        other than ``session``?) and ``limits`` (scope -> identity, counted); the first that
        refuses decides."""
        limits = limits or {}
        keys, scopes = [], list(limits)
        if client_id:
            keys.append(client_id_key(room, client_id))
        if name is not None:
            keys.append(name_hold_key(room, name))
        keys += [f"chat:ratelimit:{scope}:{limits[scope]}" for scope in scopes]
        args = [int(bool(client_id)), int(name is not None), repr(time.time()), session or "", self.window_s,
                *(self.limits[scope] for scope in scopes)]
        try:
            result = self._admit(keys, args)
        except RedisError as error:
            if name is not None:
                metrics.NAME_CHECK_ERRORS.inc()
            if scopes:
                metrics.RATE_LIMIT_ERRORS.inc()
            log.warning("checks skipped: redis unavailable", extra={"error": str(error)})
            return ADMITTED
        verdict = int(result[0])
        if verdict == STORED:
            return Verdict(stored=result[1])
        if verdict == NAME_TAKEN:
            return Verdict(name_taken=True)
        if verdict == LIMITED:
            wait = int(result[2])
            return Verdict(limited=(scopes[int(result[1]) - 1], wait if wait > 0 else self.window_s))
        return ADMITTED
