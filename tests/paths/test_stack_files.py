"""What the local stack leaves in its run directory, checked on the running stack
(tests/conftest.py's ``stack``: the same code as ``make run``)."""

import stat

OTHERS_MAY_READ = stat.S_IRGRP | stat.S_IROTH


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
