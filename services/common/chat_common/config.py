"""Reading configuration from environment variables.

Each service declares its settings in its own ``config.py`` as a frozen dataclass built
with these helpers, so that every variable, its type and its default stand in one place.
"""

import os
from dataclasses import dataclass


class ConfigError(ValueError):
    """An environment variable holds a value of the wrong type."""


def env_str(name, default):
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def env_int(name, default):
    value = env_str(name, None)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}") from None


def env_float(name, default):
    value = env_str(name, None)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {value!r}") from None


def env_bool(name, default):
    value = env_str(name, None)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def log_level():
    return env_str("LOG_LEVEL", "INFO").upper()


@dataclass(frozen=True)
class CommonConfig:
    """The settings every service has, with the defaults of the local stack."""

    kafka_bootstrap_servers: str
    kafka_topic: str
    redis_url: str
    log_level: str

    @staticmethod
    def common_from_env():
        return {
            "kafka_bootstrap_servers": env_str("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            "kafka_topic": env_str("KAFKA_TOPIC", "chat.messages"),
            "redis_url": env_str("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "log_level": log_level(),
        }
