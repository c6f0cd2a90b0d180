"""requirements/<set>.txt is what `make requirements` compiles from requirements/<set>.in:
every direct dependency of the input (and of the inputs it includes) pinned at its version,
with the dependencies of the extras it asks for, every package's own dependencies pinned too,
and a hash on every line (the images and scripts/install.sh install with --require-hashes).
A .in changed without recompiling its .txt fails here."""

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements"
SETS = ("services", "local", "test")
# Where the services run: the images' Python and platform.
ENVIRONMENT = {"python_version": "3.11", "python_full_version": "3.11.14", "sys_platform": "linux",
               "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
               "platform_python_implementation": "CPython", "os_name": "posix"}


def inputs(name):
    """The direct requirements of requirements/<name>.in, with those of the .in files it includes."""
    found = []
    for line in (REQUIREMENTS / f"{name}.in").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            found += inputs(Path(line[3:].strip()).stem)
        elif line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


def compiled(name):
    """{canonical name: version} of requirements/<name>.txt; every entry must carry hashes."""
    text = (REQUIREMENTS / f"{name}.txt").read_text()
    pins = {}
    for entry in re.split(r"\n(?=\S)", text):
        head = entry.split("\\")[0].strip()
        if not head or head.startswith("#"):
            continue
        package, _, version = head.partition("==")
        assert version, f"{name}.txt: {head!r} is not pinned"
        assert "--hash=sha256:" in entry, f"{name}.txt: {head} has no hash"
        pins[canonicalize_name(package)] = version.strip()
    return pins


def applies(requirement, extras=("",)):
    return requirement.marker is None or any(
        requirement.marker.evaluate({**ENVIRONMENT, "extra": extra}) for extra in extras)


@pytest.mark.parametrize("name", SETS)
def test_every_direct_requirement_is_pinned_at_its_version(name):
    pins = compiled(name)
    for requirement in inputs(name):
        key = canonicalize_name(requirement.name)
        assert key in pins, f"{name}.in asks for {requirement.name}, {name}.txt lacks it: run make requirements"
        assert requirement.specifier.contains(pins[key], prereleases=True), (
            f"{name}.in asks for {requirement}, {name}.txt pins {pins[key]}: run make requirements")


@pytest.mark.parametrize("name", SETS)
def test_every_pinned_package_brings_what_it_needs(name):
    """The closure: each package's own requirements (and those of the extras asked for) are
    in the same file. Read from the installed packages' metadata (the test venv has them all)."""
    pins = compiled(name)
    extras = {canonicalize_name(r.name): tuple(r.extras) for r in inputs(name)}
    for package in pins:
        for line in metadata.requires(package) or []:
            requirement = Requirement(line)
            if applies(requirement, ("",) + extras.get(package, ())):
                assert canonicalize_name(requirement.name) in pins, (
                    f"{name}.txt pins {package}, which needs {requirement}: run make requirements")


def test_each_set_pins_the_same_versions_as_the_set_it_builds_on():
    for smaller, larger in (("services", "local"), ("local", "test")):
        small, large = compiled(smaller), compiled(larger)
        assert {k: large.get(k) for k in small} == small


def test_the_stream_workers_gevent_extra_is_installed_with_gunicorn():
    """gunicorn's gevent worker imports `packaging`, which gunicorn declares only under its
    gevent extra: without it every stream pod crash-loops."""
    assert "gevent" in next(r for r in inputs("services") if r.name == "gunicorn").extras
    assert "packaging" in compiled("services")


def test_the_test_virtualenv_is_consistent():
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
