"""Names held by present sessions: another session may not post under them (409).

The stream service holds a name for a browser session while it is connected to the room
(stream/presence.py); here a post is checked against those holds. If Redis is down, the
check is skipped (counted), as rate limits are: the chat stays up.
"""

import logging
import time

from redis.exceptions import RedisError

from chat_common.messages import name_hold_key
from ingest import metrics

log = logging.getLogger(__name__)


class NameHolds:
    def __init__(self, redis):
        self.redis = redis

    def holders(self, room, user):
        """The sessions present in ``room`` that hold ``user`` (empty if none, or if Redis
        did not answer)."""
        try:
            members = self.redis.zrangebyscore(name_hold_key(room, user), time.time(), "+inf")
        except RedisError as error:
            metrics.NAME_CHECK_ERRORS.inc()
            log.warning("name check skipped: redis unavailable", extra={"error": str(error)})
            return set()
        return {member.split("\n", 1)[0] for member in members}
