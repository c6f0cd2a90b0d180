"""supervisord running the stack's programs: started so that it dies with the runner, its
log followed on the runner's stdout, stopped in order, and supervisorctl to act on one
program (stop, start, pid, signal) as Kubernetes acts on a pod."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from local.rendering import stopped_with_parent
from local.settings import ROOT, VENV_BIN

STOP_WAIT_S = 90  # supervisord stops its programs in order, each within its stopwaitsecs (30)


class Supervisor:
    def __init__(self, conf: Path, log: Path, echo: bool = False):
        self.conf = conf  # supervisord.conf (local/rendering.py)
        self.log = log
        self.echo = echo  # supervisord's log lines also on this process's stdout
        self._log_printer: threading.Thread | None = None  # the thread that prints supervisord's log (echo)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # supervisord logs to its file only, and (make run) the runner prints what it appends:
        # supervisord never writes to a terminal or pipe that may be gone (`make run | tee
        # run.log`, then Ctrl-C; the runner killed), which it does not survive.
        self.log.touch()
        self.process = subprocess.Popen(
            stopped_with_parent([str(VENV_BIN / "supervisord"), "-c", str(self.conf)]),
            cwd=ROOT,
            start_new_session=True,  # Ctrl-C reaches the runner, which stops supervisord in order
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if self.echo:
            self._log_printer = threading.Thread(target=_follow, args=(self.log, self.log.stat().st_size, self.process),
                                                 daemon=True)
            self._log_printer.start()

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"supervisord exited ({self.process.returncode}); see {self.conf.parent}/logs/")

    def wait(self) -> None:
        """Until supervisord exits."""
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._log_printer is not None:
            self._log_printer.join(5)  # supervisord's last lines: what it stopped

    def _ctl_command(self, *args: str) -> list[str]:
        return [str(VENV_BIN / "supervisorctl"), "-c", str(self.conf), *args]

    def ctl(self, *args: str) -> str:
        """Run a supervisorctl command (stop kafka, start redis, pid bridge, ...)."""
        result = subprocess.run(self._ctl_command(*args), capture_output=True, text=True)
        return result.stdout.strip()

    def pid(self, name: str) -> int:
        return int(self.ctl("pid", name))

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Kill a program's whole process group, as a crashed pod dies (supervisord restarts
        it). ``name``: a program, e.g. ``bridge``, or ``bridge-2`` for the second instance."""
        os.killpg(self.pid(name), sig)

    def lose(self, program: str, timeout: float = 30) -> None:
        """Kill a program with SIGKILL and keep it down, as a lost node's pod: frozen first
        (SIGSTOP) so that it does nothing more, told to stop so that supervisord does not
        restart it, then killed. ``ctl("start", program)`` brings it back."""
        pid = self.pid(program)
        os.killpg(pid, signal.SIGSTOP)
        stopping = subprocess.Popen(self._ctl_command("stop", program),
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while "STOPPING" not in self.ctl("status", program):  # its SIGTERM waits: the process is frozen
            if time.monotonic() > deadline:
                raise TimeoutError(f"supervisord did not begin to stop {program}")
            time.sleep(0.05)
        os.killpg(pid, signal.SIGKILL)
        stopping.wait(timeout)


def say(text: str) -> None:
    """Print, unless stdout is gone (a pipe whose reader has exited): stopping matters more."""
    try:
        print(text, flush=True)
    except OSError:
        sys.stdout = open(os.devnull, "w")  # nor fail again when Python flushes it at exit


def _follow(path: Path, offset: int, process: "subprocess.Popen[bytes]") -> None:
    """Print the lines appended to ``path`` from ``offset`` on, until ``process`` has exited
    and all it wrote is printed."""
    with open(path, "rb") as log:
        log.seek(offset)
        while True:
            line = log.readline()
            if line.endswith(b"\n"):
                say(line.decode(errors="replace").rstrip("\n"))
                continue
            log.seek(-len(line), os.SEEK_CUR)  # a line still being written: read it whole later
            if process.poll() is not None:
                return
            time.sleep(0.1)
