"""stream's settings, read once from environment variables (defaults: the local stack)."""

from dataclasses import dataclass

from chat_common import config as env


@dataclass(frozen=True)
class Config(env.CommonConfig):
    history_default: int  # messages sent on a fresh connect without ?history=
    history_limit: int  # the most ?history= and ?limit= may ask for
    heartbeat_s: float  # a comment line at least this often keeps proxies from closing the stream
    retry_ms: int  # the reconnection delay suggested to EventSource
    client_queue: int  # events kept for a client whose socket is full before it is cut off as too slow
    presence_ttl_s: int  # a connection not refreshed for this long leaves the presence list
    stream_opens_per_ip: int  # streams one client address may open per window (then 429; 0: no limit)
    stream_opens_window_s: int
    stream_connections_per_ip: int  # streams one client address may hold open at once (then 429; 0: no cap)
    drain_batch: int  # on SIGTERM, streams closed per step
    drain_interval_s: float  # pause between drain steps
    ready_wait_s: float  # how long a connect waits for Redis to hold the room's history
    scrollback_readers: int  # Kafka consumers per worker for history older than the Redis window
    scrollback_wait_s: float  # the longest a page waits for one of them (then 503)
    scrollback_scan_records: int  # records one page may scan where the rooms' offset index does not reach
    scrollback_client_records: int  # Kafka records one client address may cause to be read per window (then 429)
    scrollback_client_window_s: int
    scrollback_page_ms: int  # the longest a page reads Kafka before answering what it has, with a cursor (0: one run)
    scrollback_cache_messages: int  # messages read from Kafka each worker keeps for the next pages (0: none)
    scrollback_prefetch: bool  # after a page older than the Redis window, read the next older one into the cache
    trusted_proxies: int  # reverse proxies in front whose X-Forwarded-For is believed (the client address)
    trusted_user_header: str  # set by a sign-in proxy in front: the user's name ("" = names are self-chosen)
    session_secret: str  # signs the session cookie; shared with ingest ("" = no sessions, names not held)
    session_cookie_secure: bool  # send the session cookie over HTTPS only

    @classmethod
    def from_env(cls) -> "Config":
        return cls(
            **cls.common_from_env(),
            history_default=env.env_int("STREAM_HISTORY_DEFAULT", 50),
            history_limit=env.env_int("STREAM_HISTORY_LIMIT", 500),
            heartbeat_s=env.env_float("STREAM_HEARTBEAT_S", 15.0),
            retry_ms=env.env_int("STREAM_RETRY_MS", 2000),
            client_queue=env.env_int("STREAM_CLIENT_QUEUE", 512),
            presence_ttl_s=env.env_int("STREAM_PRESENCE_TTL_S", 45),
            stream_opens_per_ip=env.env_int("STREAM_OPENS_PER_IP", 120),
            stream_opens_window_s=env.env_int("STREAM_OPENS_WINDOW_S", 60),
            stream_connections_per_ip=env.env_int("STREAM_CONNECTIONS_PER_IP", 100),
            drain_batch=env.env_int("STREAM_DRAIN_BATCH", 200),
            drain_interval_s=env.env_float("STREAM_DRAIN_INTERVAL_S", 0.1),
            ready_wait_s=env.env_float("STREAM_READY_WAIT_S", 30.0),
            scrollback_readers=env.env_int("STREAM_SCROLLBACK_READERS", 4),
            scrollback_wait_s=env.env_float("STREAM_SCROLLBACK_WAIT_S", 2.0),
            scrollback_scan_records=env.env_int("STREAM_SCROLLBACK_SCAN_RECORDS", 10_000),
            scrollback_client_records=env.env_int("STREAM_SCROLLBACK_CLIENT_RECORDS", 200_000),
            scrollback_client_window_s=env.env_int("STREAM_SCROLLBACK_CLIENT_WINDOW_S", 60),
            scrollback_page_ms=env.env_int("STREAM_SCROLLBACK_PAGE_MS", 50),
            scrollback_cache_messages=env.env_int("STREAM_SCROLLBACK_CACHE_MESSAGES", 20_000),
            scrollback_prefetch=env.env_bool("STREAM_SCROLLBACK_PREFETCH", True),
            trusted_proxies=env.env_int("TRUSTED_PROXIES", 1),
            trusted_user_header=env.env_str("TRUSTED_USER_HEADER", ""),
            session_secret=env.env_str("SESSION_SECRET", ""),
            session_cookie_secure=env.env_bool("SESSION_COOKIE_SECURE", False),
        )
