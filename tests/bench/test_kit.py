"""The benchmark's kit and drivers, without a stack: the command lines answer, the modules
import one way (drivers -> kit), and the kit's statistics and CPU accounting give what the
drivers print."""

import ast
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.kit import cpu, stats

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _bench_imports() -> dict[str, set[str]]:
    """Each module of bench/ (not the baselines) -> the modules of bench/ it imports."""
    modules = {_module(p): p for p in BENCH.rglob("*.py") if "baselines" not in p.parts}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if sub in modules else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name in modules}
        graph[name] = found - {name, "bench"}
    return graph


def test_no_module_of_the_bench_imports_one_that_imports_it_back():
    graph = _bench_imports()
    loops = []

    def visit(name, path):
        for nxt in sorted(graph.get(name, ())):
            if nxt in path:
                loops.append(path[path.index(nxt):] + [nxt])
            else:
                visit(nxt, path + [nxt])

    for name in sorted(graph):
        visit(name, [name])
    assert not loops, loops


def test_the_kit_imports_no_driver():
    graph = _bench_imports()
    reach = {m: deps for m, deps in graph.items() if m.startswith("bench.kit")}
    assert reach, "no bench.kit modules found"
    assert all(dep.startswith("bench.kit") for deps in reach.values() for dep in deps), reach


@pytest.mark.parametrize("command", [
    ["-m", "bench", "--help"],
    ["-m", "bench.scale", "--help"],
    [str(BENCH / "profiles" / "ingest_cpu.py"), "--help"],
    [str(BENCH / "profiles" / "loadgen_cpu.py"), "--help"],
    [str(BENCH / "profiles" / "path_cpu.py"), "--help"],
    [str(BENCH / "profiles" / "stream_cpu.py"), "--help"],
])
def test_each_command_line_answers(command):
    result = subprocess.run([sys.executable, *command], capture_output=True, text=True, timeout=60,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout


def test_quantiles_and_the_nearest_rank():
    values = list(range(1, 101))
    q = stats.quantiles(values)
    assert q is not None
    assert (q["count"], q["min"], q["max"], q["p50"]) == (100, 1, 100, 50.5)
    assert q["cdf"][0] == [0, 1.0] and q["cdf"][-1] == [100, 100.0]
    assert stats.quantiles([]) is None
    assert stats.pick(None, "p99") != stats.pick(None, "p99")  # NaN: nothing was measured
    assert stats.nearest_rank(values, 0.5) == 51  # the upper of the middle pair, as the profiles print
    assert stats.nearest_rank(values, 0.99) == 100
    assert stats.nearest_rank([], 0.5) == 0


def test_a_line_through_points_and_none_through_one_x():
    assert stats.line([(1, 3), (2, 5), (3, 7)]) == pytest.approx((1.0, 2.0))
    assert stats.line([(2, 1), (2, 3)]) is None


def test_cpu_time_of_a_process_tree_counts_its_children():
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
                              "while time.process_time() < end: pass\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while cpu.times([child.pid], children=False).cpu < 0.25 and time.monotonic() < deadline:
            time.sleep(0.1)
        alone = cpu.times([os.getpid()], children=False)
        with_child = cpu.times([os.getpid()])
        assert with_child.cpu - alone.cpu >= 0.25
        assert cpu.used({"me": alone}, {"me": with_child})["me"] == pytest.approx(with_child.cpu - alone.cpu)
    finally:
        child.kill()
        child.wait()
