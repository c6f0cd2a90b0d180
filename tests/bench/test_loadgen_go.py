"""The load generator's own tests (bench/loadgen-go/*_test.go): its reading loop reports a
lost, duplicated or reordered event through the real socket path, reassembles split chunks
and survives a garbage collection while idle. A benchmark that miscounted would report a
loss-free run that was not."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_load_generators_go_tests_pass():
    run = subprocess.run([str(ROOT / "bench" / "tools.sh"), "test-loadgen"], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "ok" in run.stdout, run.stdout
