"""The code stays safe to change: ruff (lint and import order) and mypy (strict on the services
and chat_common, checked everywhere else) find nothing, and no module reaches into the import
path or into another package's private names. Each check fails on a finding."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["services", "local", "cluster", "bench", "dashboards", "tests"]


def python_files():
    for folder in SOURCES:
        yield from (ROOT / folder).rglob("*.py")


def run(*command):
    return subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing():
    result = run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    result = run("mypy", "--no-incremental")
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_module_edits_the_import_path():
    """Every package is installed (scripts/install.sh), so nothing needs ``sys.path`` edits."""
    edits = [f"{path.relative_to(ROOT)}:{n}" for path in python_files()
             for n, line in enumerate(path.read_text().splitlines(), start=1)
             if re.search(r"\bsys\.path\b", line) and path != Path(__file__)]
    assert not edits, edits


def test_no_private_name_is_imported_from_another_module():
    private = re.compile(r"^\s*from\s+([\w.]+)\s+import\s+(.*\b_[a-zA-Z]\w*)")
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in python_files()
             for n, line in enumerate(path.read_text().splitlines(), start=1)
             if private.search(line) and "__future__" not in line]
    assert not found, found
