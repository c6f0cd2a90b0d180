"""Write every dashboard's JSON into the chart: ``python -m dashboards`` (``make dashboards``).

``--check`` writes nothing and exits 1 if a committed file differs from what the code builds.
"""

import sys
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from dashboards import pipeline

CHART_DASHBOARDS = Path(__file__).resolve().parent.parent / "helm" / "chatroom" / "files" / "dashboards"
DASHBOARDS = (pipeline,)


def rendered() -> dict[Path, str]:
    """{file in the chart: the JSON text the code builds}."""
    encoder = JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False)
    return {CHART_DASHBOARDS / module.FILE_NAME: encoder.encode(module.build()) + "\n" for module in DASHBOARDS}


def main(argv: list[str]) -> int:
    stale = []
    for path, text in rendered().items():
        if path.exists() and path.read_text() == text:
            continue
        if "--check" in argv:
            stale.append(path)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    for path in stale:
        print(f"{path} differs from what dashboards/ builds: run python -m dashboards", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
