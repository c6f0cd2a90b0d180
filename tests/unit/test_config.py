"""Configuration comes from environment variables, with documented defaults."""

import pytest

from bridge.config import Config as BridgeConfig
from chat_common.config import ConfigError, env_bool, env_int
from ingest.config import Config as IngestConfig
from stream.config import Config as StreamConfig


def test_defaults_are_the_local_stacks(monkeypatch):
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL", "KAFKA_TOPIC", "HISTORY_MAX"):
        monkeypatch.delenv(name, raising=False)
    ingest, bridge, stream = IngestConfig.from_env(), BridgeConfig.from_env(), StreamConfig.from_env()
    assert ingest.kafka_bootstrap_servers == bridge.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert ingest.redis_url == stream.redis_url == "redis://127.0.0.1:6379/0"
    assert bridge.kafka_topic == "chat.messages"
    assert stream.history_default == 50 and stream.history_limit == 500
    assert bridge.history_max >= stream.history_limit  # a full ?history= fits in the window
    assert stream.heartbeat_s <= 15


def test_the_environment_overrides(monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_USER", "5")
    monkeypatch.setenv("HISTORY_MAX", "2000")
    assert IngestConfig.from_env().rate_limit_user == 5
    assert BridgeConfig.from_env().history_max == 2000


@pytest.mark.parametrize("value", ["ten", "1.5", "0x10"])
def test_a_malformed_number_names_the_variable(monkeypatch, value):
    monkeypatch.setenv("HISTORY_MAX", value)
    with pytest.raises(ConfigError, match="HISTORY_MAX"):
        env_int("HISTORY_MAX", 1)


def test_booleans(monkeypatch):
    monkeypatch.setenv("FLAG", "yes")
    assert env_bool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "maybe")
    with pytest.raises(ConfigError):
        env_bool("FLAG", False)


def test_the_gateway_drops_an_idle_connection_to_ingest_before_ingest_does():
    """Otherwise the gateway can send a POST on a connection just as ingest closes it, and
    the sender gets a 502/503 for a message never stored (nginx does not retry a POST)."""
    import re
    import runpy
    from pathlib import Path

    root = Path(__file__).parents[2]
    template = (root / "local" / "templates" / "nginx.conf").read_text()
    upstream = re.search(r"\n    upstream ingest \{(.*?)\n    \}", template, re.S).group(1)
    pool_timeout = re.search(r"keepalive_timeout (\d+)s;", upstream)
    assert pool_timeout, upstream
    ingest = runpy.run_path(str(root / "services" / "ingest" / "gunicorn.conf.py"))
    assert int(pool_timeout.group(1)) < ingest["keepalive"]


def test_a_worker_keeps_its_startup_objects_out_of_full_collections(monkeypatch):
    """Each service's post_worker_init calls settle_heap: a full collection then no longer walks
    the worker's modules and app (40 to 270 ms each under load, every thread of the worker
    waiting), unless GC_FREEZE=false."""
    import gc

    from chat_common.gunicorn_common import settle_heap

    gc.unfreeze()
    try:
        monkeypatch.setenv("GC_FREEZE", "false")
        settle_heap()
        assert gc.get_freeze_count() == 0
        monkeypatch.delenv("GC_FREEZE")
        settle_heap()
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()


def test_the_runner_answers_help_without_starting_anything():
    """`python local/stack.py --help` says that settings are environment variables; it does
    not start a stack (it once did: the runner read no arguments)."""
    import subprocess
    import sys
    from pathlib import Path

    runner = Path(__file__).parents[2] / "local" / "stack.py"
    result = subprocess.run([sys.executable, str(runner), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "environment variable" in result.stdout
    assert "Starting the stack" not in result.stdout


def test_allowed_hosts_default_to_loopback_and_the_public_urls_host(monkeypatch):
    monkeypatch.delenv("ALLOWED_HOSTS", raising=False)
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    assert IngestConfig.from_env().allowed_hosts == {"localhost", "127.0.0.1", "[::1]"}
    monkeypatch.setenv("PUBLIC_URL", "https://Chat.Example.com:8443/")
    assert StreamConfig.from_env().allowed_hosts == {"localhost", "127.0.0.1", "[::1]", "chat.example.com"}
    monkeypatch.setenv("ALLOWED_HOSTS", "chat.example.com, chat.example.org:8080")
    assert IngestConfig.from_env().allowed_hosts == {"chat.example.com", "chat.example.org:8080"}


@pytest.mark.parametrize("value", ["chat.example.com", "https://", "http://[::1"])
def test_a_public_url_that_is_not_a_url_names_the_variable(monkeypatch, value):
    monkeypatch.delenv("ALLOWED_HOSTS", raising=False)
    monkeypatch.setenv("PUBLIC_URL", value)
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        IngestConfig.from_env()


def test_the_per_address_budgets_have_their_documented_defaults(monkeypatch):
    for name in ("RATE_LIMIT_IP_BYTES", "RATE_LIMIT_IP_TYPING", "RATE_LIMIT_IP_DELETES", "RATE_LIMIT_IP_ROOMS",
                 "RATE_LIMIT_ROOMS_WINDOW_S", "RATE_LIMIT_IP_DAY", "RATE_LIMIT_IP_BYTES_DAY"):
        monkeypatch.delenv(name, raising=False)
    config = IngestConfig.from_env()
    assert (config.rate_limit_ip_bytes, config.rate_limit_ip_typing, config.rate_limit_ip_deletes) == (262144, 60, 30)
    assert (config.rate_limit_ip_rooms, config.rate_limit_rooms_window_s) == (10, 3600)
    assert (config.rate_limit_ip_day, config.rate_limit_ip_bytes_day) == (20_000, 16 * 1024 * 1024)
