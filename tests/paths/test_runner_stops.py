"""`make run`'s runner (local/stack.py) leaves nothing running however it is stopped: Ctrl-C
while its output goes through a pipe whose reader Ctrl-C also ends (`make run | tee run.log`),
or the runner itself killed outright. Either way the next `make run` finds its ports free.

Each test starts the runner on free ports in its own session, as a terminal's foreground job,
and follows every process it started, by pid.
"""

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from support import free_port
from test_fresh_clone import PORTS, ROOT

pytestmark = pytest.mark.slow


def start_runner(tmp_path, through_tee):
    env = {**os.environ, **{name: str(free_port()) for name in PORTS}, "RUN_DIR": str(tmp_path / "run")}
    log = tmp_path / "run.log"
    runner = f"{sys.executable} local/stack.py"
    command = f"{runner} 2>&1 | tee {log}" if through_tee else f"exec {runner} > {log} 2>&1"
    shell = subprocess.Popen(["env", "--default-signal=INT", "bash", "-c", command], cwd=ROOT, env=env,
                             start_new_session=True)
    deadline = time.monotonic() + 240
    while "Chatroom is running" not in (log.read_text() if log.exists() else ""):
        assert shell.poll() is None, f"the runner exited:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no URL printed:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    return shell, log


def started_by(shell):
    """Every live process under the shell: the runner, supervisord and what it runs."""
    return [p for p in psutil.Process(shell.pid).children(recursive=True)]


def still_running(processes):
    left = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{process.pid} {' '.join(process.cmdline())[:100]}")
        except psutil.NoSuchProcess:
            pass
    return left


def wait_until_gone(processes, timeout=40):
    deadline = time.monotonic() + timeout
    while still_running(processes) and time.monotonic() < deadline:
        time.sleep(0.2)
    return still_running(processes)


def stop_all(shell, processes):
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    if shell.poll() is None:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()


def test_ctrl_c_with_the_output_through_tee_stops_everything_in_order(tmp_path):
    shell, log = start_runner(tmp_path, through_tee=True)
    processes = started_by(shell)
    try:
        names = " ".join(" ".join(p.cmdline()) for p in processes)
        assert "supervisord" in names and "kafka.Kafka" in names and "nginx" in names, names

        os.killpg(shell.pid, signal.SIGINT)  # Ctrl-C: the runner and tee alike
        assert wait_until_gone(processes) == []
        # supervisord stopped its programs itself, in its order (the gateway first, Kafka last).
        supervisord_log = (tmp_path / "run" / "logs" / "supervisord.log").read_text()
        assert supervisord_log.index("stopped: nginx") < supervisord_log.index("stopped: kafka")
        # Its lines reached the terminal once each, not twice.
        output = log.read_text()
        assert output.count("spawned: 'kafka'") == 1, output[-3000:]
    finally:
        stop_all(shell, processes)


def test_the_runner_killed_outright_still_stops_everything(tmp_path):
    shell, _ = start_runner(tmp_path, through_tee=False)
    processes = started_by(shell)
    try:
        os.kill(shell.pid, signal.SIGKILL)  # the shell exec'd the runner: this is the runner
        assert wait_until_gone(processes) == []
        supervisord_log = (tmp_path / "run" / "logs" / "supervisord.log").read_text()
        assert "stopped: kafka" in supervisord_log
    finally:
        stop_all(shell, processes)
