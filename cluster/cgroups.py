"""The run's own cgroup, under which kubelet puts the pods (its cgroupRoot): made in every
hierarchy of the machine, read for the processes left in it, removed at the end."""

import os
from pathlib import Path

CGROUP_FS = Path("/sys/fs/cgroup")


def _cgroup_dirs(name: str) -> list[Path]:
    """The run's cgroup in each hierarchy of the machine that has it (cgroup v1: one per
    controller)."""
    return [path for path in CGROUP_FS.glob(f"*/{name}") if path.is_dir()]


def make_cgroup(name: str) -> None:
    """The cgroup kubelet puts the pods under (its cgroupRoot), in every hierarchy; a new cpuset
    cgroup starts with no CPUs and no memory nodes, so it gets its parent's."""
    for hierarchy in CGROUP_FS.iterdir():
        if not (hierarchy / "cgroup.procs").exists():
            continue
        path = hierarchy / name
        path.mkdir(exist_ok=True)
        for setting in ("cpuset.cpus", "cpuset.mems"):
            if (path / setting).exists() and not (path / setting).read_text().strip():
                (path / setting).write_text((hierarchy / setting).read_text())


def _cgroup_tree(name: str) -> list[Path]:
    """Every cgroup of the run's tree in every hierarchy, deepest first. One that goes away
    while the tree is read (a container's, as kubelet removes it) is left out: os.walk
    skips a directory it can no longer list."""
    dirs = [Path(path) for top in _cgroup_dirs(name) for path, _, _ in os.walk(top)]
    return sorted(dirs, key=lambda p: len(p.parts), reverse=True)


def cgroup_pids(name: str) -> list[int]:
    pids: set[int] = set()
    for path in _cgroup_tree(name):
        try:
            pids.update(int(pid) for pid in (path / "cgroup.procs").read_text().split())
        except OSError:
            pass
    return sorted(pids)


def remove_cgroup(name: str) -> None:
    """Removes the run's cgroup tree, deepest first (empty cgroups only: rmdir)."""
    for path in _cgroup_tree(name):
        try:
            path.rmdir()
        except FileNotFoundError:
            pass
