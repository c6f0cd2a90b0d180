"""Reading configuration from environment variables.

Each service declares its settings in its own ``config.py`` as a frozen dataclass built
with these helpers, so that every variable, its type and its default stand in one place.
"""

import os
from dataclasses import dataclass
from typing import TypedDict, overload
from urllib.parse import urlsplit


class ConfigError(ValueError):
    """An environment variable holds a value of the wrong type."""


@overload
def env_str(name: str, default: str) -> str: ...
@overload
def env_str(name: str, default: None) -> str | None: ...
def env_str(name: str, default: str | None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_int(name: str, default: int) -> int:
    value = env_str(name, None)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


def env_float(name: str, default: float) -> float:
    value = env_str(name, None)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None


def env_bool(name: str, default: bool) -> bool:
    value = env_str(name, None)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def log_level() -> str:
    return env_str("LOG_LEVEL", "INFO").upper()


class CommonSettings(TypedDict):
    kafka_bootstrap_servers: str
    kafka_topic: str
    kafka_rooms_topic: str
    redis_url: str
    redis_mode: str
    kafka_topic_partitions: int
    log_level: str
    public_url: str
    allowed_hosts: frozenset[str]


@dataclass(frozen=True)
class CommonConfig:
    """The settings every service has, with the defaults of the local stack."""

    kafka_bootstrap_servers: str
    kafka_topic: str
    kafka_rooms_topic: str  # private rooms and their members (compacted; chat_common/private.py)
    redis_url: str
    # "single" (one Redis) or "cluster" (Redis Cluster; REDIS_URL names a seed node): chat_common/keys.py
    redis_mode: str
    # the topic's partition count: cluster mode places a room's keys by its partition (must be the topic's)
    kafka_topic_partitions: int
    log_level: str
    public_url: str  # the site's address as browsers see it ("" = unknown): its origin may post
    allowed_hosts: frozenset[str]  # Host values public routes answer for ("*" = any); entries may name a port

    @staticmethod
    def common_from_env() -> CommonSettings:
        public_url = env_str("PUBLIC_URL", "")
        return CommonSettings(
            kafka_bootstrap_servers=env_str("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            kafka_topic=env_str("KAFKA_TOPIC", "chat.messages"),
            kafka_rooms_topic=env_str("KAFKA_ROOMS_TOPIC", "chat.rooms"),
            redis_url=env_str("REDIS_URL", "redis://127.0.0.1:6379/0"),
            redis_mode=env_str("REDIS_MODE", "single"),
            kafka_topic_partitions=env_int("KAFKA_TOPIC_PARTITIONS", 6),
            log_level=log_level(),
            public_url=public_url,
            allowed_hosts=allowed_hosts(env_str("ALLOWED_HOSTS", ""), public_url),
        )


DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def allowed_hosts(value: str, public_url: str) -> frozenset[str]:
    """ALLOWED_HOSTS (comma-separated) or, when unset, the loopback names and the host of
    ``public_url``."""
    hosts = [h.strip().lower() for h in value.split(",") if h.strip()]
    if hosts:
        return frozenset(hosts)
    try:
        public_host = urlsplit(public_url).hostname if public_url else None
    except ValueError:
        raise ConfigError(f"PUBLIC_URL must be a URL such as https://chat.example.com, got {public_url!r}") from None
    if public_url and not public_host:
        raise ConfigError(f"PUBLIC_URL must be a URL such as https://chat.example.com, got {public_url!r}")
    if public_host and ":" in public_host:
        public_host = f"[{public_host}]"
    return frozenset([*DEFAULT_ALLOWED_HOSTS, *([public_host] if public_host else [])])
