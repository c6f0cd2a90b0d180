"""ingest's settings, read once from environment variables (defaults: the local stack)."""

from dataclasses import dataclass

from chat_common import config as env
from chat_common.messages import REACTIONS_PER_MESSAGE_MAX


@dataclass(frozen=True)
class Config(env.CommonConfig):
    produce_timeout_s: float  # a POST waits at most this long for Kafka's acknowledgement
    kafka_linger_ms: int
    # Produce requests in flight per broker connection (records arriving meanwhile batch). 1
    # made no difference per worker: records per batch 1.69 and 1.47 against 1.75 and 1.51
    # with 64 closed-loop posters over 2 x 16 threads (partitions are muted while one of
    # their batches is in flight, so a partition's records batch either way). Per request, 1
    # shares more (kafka-python's records-per-request-avg 3.3 to 5.0 against 2.1 to 3.5) but
    # costs the same CPU per POST within the noise (1,971 and 1,977 against 1,906 and 1,813 µs).
    kafka_max_in_flight: int
    # kafka-python's own producer metrics (records per request, request latency), recorded on
    # every record and request when on, exported as chat_ingest_kafka_client (ingest.metrics).
    kafka_client_metrics: bool
    retry_after_s: int  # Retry-After sent with 503 while Kafka is unreachable
    rate_limit_window_s: int
    rate_limit_user: int  # messages per window per user name
    rate_limit_ip: int  # requests (posts and deletes) per window per client address
    rate_limit_ip_bytes: int  # request-body bytes per window per client address
    rate_limit_ip_typing: int  # typing signals per window per client address
    rate_limit_ip_deletes: int  # deletes per window per client address, refused ones included
    rate_limit_user_reactions: int  # reactions added or taken back per window per user name
    reactions_per_message_max: int  # (user, emoji) reactions a message holds at most
    rate_limit_ip_rooms: int  # rooms created (a post to a room with no state yet) per rooms window per address
    rate_limit_rooms_window_s: int
    rate_limit_ip_day: int  # posts per day per client address
    rate_limit_ip_bytes_day: int  # post bodies' bytes per day per client address
    trusted_proxies: int  # reverse proxies in front whose X-Forwarded-For is believed
    allowed_origins: frozenset[str]  # other page origins allowed to post (besides the site's own)
    trusted_user_header: str  # set by a sign-in proxy in front: the user's name ("" = names are self-chosen)
    session_secret: str  # signs the session cookie; shared with stream ("" = no sessions, names not held)
    session_cookie_secure: bool  # send the session cookie over HTTPS only
    typing_interval_s: float  # a name may signal "typing" once per this interval per room
    moderators: frozenset[str]  # behind a sign-in proxy: names that may delete anyone's message
    private_room_max_members: int  # members a private room may have besides its owner

    @classmethod
    def from_env(cls) -> "Config":
        return cls(
            **cls.common_from_env(),
            produce_timeout_s=env.env_float("INGEST_PRODUCE_TIMEOUT_S", 5.0),
            kafka_linger_ms=env.env_int("INGEST_KAFKA_LINGER_MS", 0),
            kafka_max_in_flight=env.env_int("INGEST_KAFKA_MAX_IN_FLIGHT", 5),
            kafka_client_metrics=env.env_bool("INGEST_KAFKA_CLIENT_METRICS", False),
            retry_after_s=env.env_int("INGEST_RETRY_AFTER_S", 2),
            rate_limit_window_s=env.env_int("RATE_LIMIT_WINDOW_S", 10),
            rate_limit_user=env.env_int("RATE_LIMIT_USER", 30),
            rate_limit_ip=env.env_int("RATE_LIMIT_IP", 300),
            rate_limit_ip_bytes=env.env_int("RATE_LIMIT_IP_BYTES", 262144),
            rate_limit_ip_typing=env.env_int("RATE_LIMIT_IP_TYPING", 60),
            rate_limit_ip_deletes=env.env_int("RATE_LIMIT_IP_DELETES", 30),
            rate_limit_user_reactions=env.env_int("RATE_LIMIT_USER_REACTIONS", 30),
            reactions_per_message_max=env.env_int("REACTIONS_PER_MESSAGE_MAX", REACTIONS_PER_MESSAGE_MAX),
            rate_limit_ip_rooms=env.env_int("RATE_LIMIT_IP_ROOMS", 10),
            rate_limit_rooms_window_s=env.env_int("RATE_LIMIT_ROOMS_WINDOW_S", 3600),
            rate_limit_ip_day=env.env_int("RATE_LIMIT_IP_DAY", 20_000),
            rate_limit_ip_bytes_day=env.env_int("RATE_LIMIT_IP_BYTES_DAY", 16 * 1024 * 1024),
            trusted_proxies=env.env_int("TRUSTED_PROXIES", 1),
            allowed_origins=frozenset(o for o in env.env_str("INGEST_ALLOWED_ORIGINS", "").split(",") if o),
            trusted_user_header=env.env_str("TRUSTED_USER_HEADER", ""),
            session_secret=env.env_str("SESSION_SECRET", ""),
            session_cookie_secure=env.env_bool("SESSION_COOKIE_SECURE", False),
            typing_interval_s=env.env_float("TYPING_INTERVAL_S", 2.0),
            moderators=frozenset(n.strip() for n in env.env_str("MODERATORS", "").split(",") if n.strip()),
            private_room_max_members=env.env_int("PRIVATE_ROOM_MAX_MEMBERS", 1000),
        )
