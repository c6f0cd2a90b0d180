"""The benchmark's compiled programs (the load generator, Centrifugo and its producer), built
once into the per-user cache by bench/tools.sh."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    """The path of the program ``name`` (``loadgen``, ``centrifugo``, ``centrifugo-ingest``),
    built first if its sources changed."""
    out = subprocess.run([str(ROOT / "bench" / "tools.sh"), name], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]
