"""The README's first command, as a new user meets it: `make run` in a fresh clone, with the
virtualenv that `make run` itself builds (not the test one), then Ctrl-C.

The clone holds the tracked files only (no .venv, .cache or .run); it shares the per-user
cache (Kafka jars, pip's wheels) as a second clone on the same machine does. Every port is a
free one, so that it runs beside the test stack.
"""

import os
import re
import signal
import subprocess
import time

import httpx
import psutil
import pytest
from httpx_sse import connect_sse
from support import free_port, new_room, post

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PORTS = ("GATEWAY_PORT", "INGEST_PORT", "STREAM_PORT", "BRIDGE_PORT", "KAFKA_PORT", "KAFKA_CONTROLLER_PORT",
         "REDIS_PORT")

pytestmark = pytest.mark.slow


def fresh_clone(target):
    """The tracked files of this checkout, as `git clone` lays them out (uncommitted edits
    included, so that the test checks the code under test)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        source = os.path.join(ROOT, name)
        if not os.path.lexists(source):
            continue  # deleted in the work tree
        os.makedirs(os.path.join(target, os.path.dirname(name)), exist_ok=True)
        if os.path.islink(source):
            os.symlink(os.readlink(source), os.path.join(target, name))
        else:
            with open(source, "rb") as src, open(os.path.join(target, name), "wb") as dst:
                dst.write(src.read())
            os.chmod(os.path.join(target, name), os.stat(source).st_mode)


def processes_of(clone):
    """Processes whose command line names the clone or that run in it: every part of its
    stack does one or the other (redis-server and nginx's workers retitle themselves)."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        try:
            if (any(str(clone) in part for part in process.info["cmdline"] or ())
                    or (process.info["cwd"] or "").startswith(str(clone))):
                found.append(process)
        except psutil.Error:
            pass
    return found


def test_make_run_in_a_fresh_clone_serves_chat_and_ctrl_c_stops_everything(tmp_path):
    clone = tmp_path / "chatroom"
    fresh_clone(clone)
    ports = {name: str(free_port()) for name in PORTS}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(ports)
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if not p.startswith(ROOT))
    log = (tmp_path / "make-run.log").open("w+")
    # Its own session, as a terminal's foreground job: Ctrl-C goes to the whole group. A
    # terminal's job takes SIGINT at its default, even when this test run was started with
    # SIGINT ignored (as a background job of a shell without job control is): children inherit it.
    make = subprocess.Popen(["env", "--default-signal=INT", "make", "run"], cwd=clone, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = wait_for_url(make, tmp_path / "make-run.log", timeout=600)
        assert url == f"http://127.0.0.1:{ports['GATEWAY_PORT']}"

        # make run installed the services and the runner, and nothing of the tests.
        venv_python = clone / ".venv" / "bin" / "python"
        assert subprocess.run([venv_python, "-c", "import pytest"], capture_output=True).returncode != 0
        check = subprocess.run([venv_python, "-m", "pip", "check"], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr

        page = httpx.get(url + "/", timeout=10)
        assert page.status_code == 200 and "<html" in page.text.lower()
        room = new_room("fresh")
        with httpx.Client(timeout=httpx.Timeout(10, read=30)) as client:
            with connect_sse(client, "GET", f"{url}/stream/rooms/{room}?history=0") as source:
                sent = post(url, room, text="hello from a fresh clone")
                assert sent.status_code == 201, sent.text
                received = next(e for e in source.iter_sse() if e.event == "message" and e.data)
        assert received.id == sent.json()["id"]
        assert '"hello from a fresh clone"' in received.data
        assert processes_of(clone), "no process of the stack found"

        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        deadline = time.monotonic() + 30
        make.wait(30)
        while processes_of(clone) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [(p.pid, " ".join(p.info["cmdline"])[:120]) for p in processes_of(clone)]
        assert left == [], f"left running after Ctrl-C: {left}"
    finally:
        for process in processes_of(clone):
            process.kill()
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
        log.seek(0)
        print(log.read()[-4000:])


def wait_for_url(make, log_path, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"Chatroom is running: (\S+)", log_path.read_text())
        if match:
            return match.group(1)
        assert make.poll() is None, f"make run exited ({make.returncode}):\n{log_path.read_text()[-4000:]}"
        time.sleep(0.5)
    raise TimeoutError(f"make run printed no URL within {timeout} s:\n{log_path.read_text()[-4000:]}")
