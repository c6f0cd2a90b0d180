"""What the local stack leaves in its run directory and how its Redis is bounded, checked on
the running stack (tests/conftest.py's ``stack``: the same code as ``make run``)."""

import stat

import redis

from local.stack import Settings, Stack

OTHERS_MAY_READ = stat.S_IRGRP | stat.S_IROTH
CHART_REDIS_MAXMEMORY_BYTES = 256 * 1024 * 1024  # helm/redis/values.yaml: maxmemory 256mb


def files_holding(run_dir, secret):
    """Each regular file under ``run_dir`` whose bytes contain ``secret``: {path: mode}."""
    found = {}
    for path in run_dir.rglob("*"):
        if path.is_file() and not path.is_symlink() and secret in path.read_bytes():
            found[str(path.relative_to(run_dir))] = stat.S_IMODE(path.stat().st_mode)
    return found


def test_the_session_key_is_in_no_file_others_can_read(stack):
    secret = stack.service_environment("ingest")["SESSION_SECRET"].encode()
    assert len(secret) >= 32
    found = files_holding(stack.run_dir, secret)
    assert "session-secret" in found  # kept, so that a restart keeps the browsers' sessions
    assert {path: oct(mode) for path, mode in found.items() if mode & OTHERS_MAY_READ} == {}


def test_redis_is_bounded_as_the_charts_and_refuses_writes_when_full(stack):
    client = redis.Redis.from_url(stack.settings.redis_url)
    try:
        assert int(client.config_get("maxmemory")["maxmemory"]) == CHART_REDIS_MAXMEMORY_BYTES
        # Evicting would drop keys the services need to be correct (rate-limit counters, name
        # holds, the history window): a full Redis refuses writes, and they fail closed.
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    finally:
        client.close()


def test_stack_redis_maxmemory_sets_the_bound(monkeypatch, tmp_path):
    monkeypatch.setenv("STACK_REDIS_MAXMEMORY", "64mb")
    monkeypatch.setenv("RUN_DIR", str(tmp_path))
    [program] = [p for p in Stack(Settings.from_env()).files.programs() if p.name == "redis"]
    assert "--maxmemory 64mb --maxmemory-policy noeviction" in program.command
