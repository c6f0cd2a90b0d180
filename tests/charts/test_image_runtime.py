"""What each image runs, replayed on this machine as the image would run it: the Python
packages exactly as the Dockerfile installs them (requirements/services.txt, wheels only,
hashes checked) in a clean virtualenv, the Dockerfile's CMD with its environment and the
chart's, against the real Kafka and Redis of the test stack; the helm test script with that
virtualenv; the web image's nginx configuration with a real nginx.

A dependency that only the test virtualenv has (as gunicorn's gevent worker once needed
`packaging`) makes a service here fail to start, as its pod would.
"""

import json
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from dockerfiles import env_of, values
from k8s_manifests import ROOT, named, pod_spec, render
from support import free_port, wait_until_ready

SERVICES = ("ingest", "bridge", "stream")
PIP_CACHE = Path(os.environ.get("CHATROOM_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or
                 Path.home() / ".cache") / "chatroom") / "pip"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory):
    """The images' virtualenv: `pip install --only-binary=:all: --require-hashes -r
    requirements/services.txt` into a new venv, as the Dockerfiles' builder stage does."""
    [run] = [r for r in values("services/stream/Dockerfile", "RUN") if "pip install" in r]
    assert "--only-binary=:all: --require-hashes -r /tmp/requirements.txt" in run
    venv = tmp_path_factory.mktemp("image") / "venv"
    base_python = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base_python, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [venv / "bin" / "pip", "install", "--disable-pip-version-check", "-q", "--only-binary=:all:",
         "--require-hashes", "-r", ROOT / "requirements" / "services.txt"],
        check=True, env={**os.environ, "PIP_CACHE_DIR": str(PIP_CACHE)},
    )
    return venv


def test_the_images_packages_are_consistent(image_venv):
    check = subprocess.run([image_venv / "bin" / "python", "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def chart_environment(service):
    """The environment the chart gives the service's container: its ConfigMap (envFrom)
    and its env list, with references resolved as the kubelet would."""
    docs = render("defaults")
    kind = "StatefulSet" if service == "bridge" else "Deployment"
    [container] = [c for c in pod_spec(named(docs, kind, f"chatroom-{service}"))["containers"] if c["name"] == service]
    env = {}
    for source in container.get("envFrom", []):
        env.update(named(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in item["valueFrom"]:
            env[item["name"]] = f"chatroom-{service}-0"  # metadata.name
        else:
            env[item["name"]] = uuid.uuid4().hex  # a Secret's key
    return env


@pytest.mark.parametrize("service", SERVICES)
def test_each_image_starts_its_cmd_and_becomes_ready(service, image_venv, stack, tmp_path):
    dockerfile = f"services/{service}/Dockerfile"
    [cmd] = values(dockerfile, "CMD")
    port = free_port()
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    env = {**env_of(dockerfile), **chart_environment(service)}
    env.update({
        # The image's /app is this checkout; its venv is the one built above.
        "PATH": f"{image_venv / 'bin'}:/usr/bin:/bin",
        "PYTHONPATH": env["PYTHONPATH"].replace("/app", str(ROOT)),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        # Loopback only, and the test stack's servers instead of the cluster's Services.
        f"{service.upper()}_BIND": f"127.0.0.1:{port}",
        "KAFKA_BOOTSTRAP_SERVERS": stack.settings.kafka_bootstrap,
        "REDIS_URL": stack.settings.redis_url.rsplit("/", 1)[0] + "/3",  # a database of its own
        "BRIDGE_GROUP_ID": f"image-check-{uuid.uuid4().hex[:8]}",  # leaves the stack's bridge alone
    })
    with open(tmp_path / "service.log", "wb") as log:
        process = subprocess.Popen(json.loads(cmd), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_until_ready([f"http://127.0.0.1:{port}"], 90)
        except AssertionError:
            raise AssertionError((tmp_path / "service.log").read_text()[-3000:]) from None
        assert process.poll() is None
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(30)


def test_the_helm_test_script_passes_with_the_images_packages(image_venv, stack):
    """The `helm test` pod runs helm/chatroom/files/helm-test/roundtrip.py in the ingest image."""
    pod = named(render("defaults"), "Pod", "chatroom-test-roundtrip")
    [container] = pod_spec(pod)["containers"]
    assert container["command"] == ["python", "/scripts/roundtrip.py"]
    result = subprocess.run(
        [image_venv / "bin" / "python", ROOT / "helm" / "chatroom" / "files" / "helm-test" / "roundtrip.py"],
        env={"INGEST_URL": stack.settings.gateway_url, "STREAM_URL": stack.settings.gateway_url, "TIMEOUT_S": "60",
             "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_web_images_nginx_serves_the_page(tmp_path):
    """web/nginx/nginx.conf and static.conf with a real nginx, laid out as the image lays
    them out (paths moved under a temporary root, the port a free loopback one)."""
    etc, html, tmp = tmp_path / "etc", tmp_path / "html", tmp_path / "tmp"
    for folder in (etc / "chatroom", html, tmp):
        folder.mkdir(parents=True)
    port = free_port()

    def moved(text):
        return (text.replace("/tmp/", f"{tmp}/").replace("/etc/nginx/", f"{etc}/")
                .replace("/usr/share/nginx/html", str(html)).replace("listen 8080;", f"listen 127.0.0.1:{port};"))

    (etc / "nginx.conf").write_text(moved((ROOT / "web" / "nginx" / "nginx.conf").read_text()))
    for shared in ("static.conf", "json-errors.conf", "json-error-pages.conf"):
        (etc / "chatroom" / shared).write_text(moved((ROOT / "web" / "nginx" / shared).read_text()))
    (etc / "mime.types").write_text(Path("/etc/nginx/mime.types").read_text())
    for line in values("web/Dockerfile", "COPY"):
        sources = [s for s in shlex.split(line)[:-1] if not s.startswith("--") and s.startswith("web/") and
                   not s.startswith("web/nginx/")]
        for source in sources:
            (html / Path(source).name).write_bytes((ROOT / source).read_bytes())
    conf = (etc / "nginx.conf").read_text()
    if os.geteuid() == 0:  # the image runs nginx as one unprivileged user; here workers stay root
        (etc / "nginx.conf").write_text("user root;\n" + conf)
    nginx = subprocess.Popen(["nginx", "-c", str(etc / "nginx.conf"), "-g", "daemon off;", "-p", str(tmp)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not answers(f"http://127.0.0.1:{port}/healthz"):
            assert nginx.poll() is None, nginx.stdout.read().decode()
            assert time.monotonic() < deadline, "the web image's nginx did not answer within 10 s"
            time.sleep(0.1)
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "<html" in page.text.lower()
        assert "content-security-policy" in page.headers
        room = httpx.get(f"http://127.0.0.1:{port}/r/lobby", timeout=5)  # the page's own routes
        assert room.status_code == 200 and room.text == page.text
        script = httpx.get(f"http://127.0.0.1:{port}/app.js", timeout=5)
        assert script.status_code == 200 and "javascript" in script.headers["content-type"]
        # What nginx refuses itself is the API's JSON error, not an HTML page.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /r/a%00b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head, answer
        assert json.loads(body)["error"]["code"] == "bad_request"
    finally:
        nginx.terminate()
        nginx.wait(10)


def answers(url):
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
