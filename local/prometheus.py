"""A Prometheus for the local stack: scrapes the three services under the job names a
Kubernetes install uses, and evaluates the alert rules shipped in the Helm chart.

    python local/prometheus.py        # after `make run`; http://127.0.0.1:9090

Settings are environment variables: PROMETHEUS_PORT (9090), INGEST_PORT, STREAM_PORT,
BRIDGE_PORT (as for the stack), RUN_DIR (.run/local; its prometheus/ folder holds the data).
The tests render the same configuration with ``render_config`` on their own ports.
"""

import os
import sys
from pathlib import Path
from string import Template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "local" / "templates" / "prometheus.yml"
RULES_FILE = ROOT / "helm" / "chatroom" / "files" / "alerts" / "rules.yaml"
PROMETHEUS = "/usr/bin/prometheus"


def render_config(target, *, ingest_port, stream_port, bridge_port, host="127.0.0.1",
                  scrape_interval="5s", evaluation_interval=None, rules_file=RULES_FILE):
    """Write prometheus.yml for a stack on these ports; return its path."""
    text = Template(TEMPLATE.read_text()).substitute(
        host=host,
        ingest_port=ingest_port,
        stream_port=stream_port,
        bridge_port=bridge_port,
        scrape_interval=scrape_interval,
        scrape_timeout=scrape_interval,
        evaluation_interval=evaluation_interval or scrape_interval,
        rules_file=rules_file,
    )
    target = Path(target)
    target.write_text(text)
    return target


def command(config_file, data_dir, port, host="127.0.0.1"):
    """The Prometheus command line for a configuration rendered by ``render_config``."""
    return [
        PROMETHEUS,
        f"--config.file={config_file}",
        f"--storage.tsdb.path={data_dir}",
        f"--web.listen-address={host}:{port}",
        "--log.level=warn",
    ]


def main():
    run_dir = Path(os.environ.get("RUN_DIR") or ROOT / ".run" / "local").resolve() / "prometheus"
    run_dir.mkdir(parents=True, exist_ok=True)
    config = render_config(
        run_dir / "prometheus.yml",
        ingest_port=int(os.environ.get("INGEST_PORT") or 8001),
        stream_port=int(os.environ.get("STREAM_PORT") or 8002),
        bridge_port=int(os.environ.get("BRIDGE_PORT") or 8003),
    )
    port = int(os.environ.get("PROMETHEUS_PORT") or 9090)
    print(f"Prometheus on http://127.0.0.1:{port} (config {config})", flush=True)
    argv = command(config, run_dir / "data", port)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main())
