"""A Prometheus for the local stack: scrapes every instance of the three services under
the job names a Kubernetes install uses, and evaluates the alert rules shipped in the Helm
chart.

    python local/prometheus.py        # after `make run`; http://127.0.0.1:9090

Settings are environment variables: PROMETHEUS_PORT (9090), and the stack's own (INGEST_PORT,
STREAM_PORT, BRIDGE_PORT, STACK_REPLICAS, RUN_DIR: its prometheus/ folder holds the data).
The tests render the same configuration with ``render_config`` for their own stacks.
"""

import os
import sys
from pathlib import Path
from string import Template

from local.settings import SERVICES, Settings

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "local" / "templates" / "prometheus.yml"
RULES_FILE = ROOT / "helm" / "chatroom" / "files" / "alerts" / "rules.yaml"
PROMETHEUS = "/usr/bin/prometheus"
# A scrape of the broker walks its MBeans: 83 ms median, p90 0.62 s and up to 1.06 s on a
# loaded 2-core machine (60 scrapes, load average 13). Every 5 s with as long to answer,
# so that a slow scrape is not counted as the broker down.
KAFKA_SCRAPE_INTERVAL_S = 5


def render_config(target, settings, *, scrape_interval="5s", evaluation_interval=None, rules_file=RULES_FILE):
    """Write prometheus.yml for the stack of ``settings`` (local/stack.py); return its path."""
    targets = {
        f"{name}_targets": "\n".join(
            f'      - targets: ["{settings.host}:{settings.port(name, n)}"]\n'
            f"        labels: {{pod: {program}}}"
            for n, program in enumerate(settings.instances(name), start=1))
        for name in SERVICES
    }
    # The broker, under the job name of the kafka chart's PodMonitor, when it serves its metrics.
    kafka_job = (
        "  - job_name: chatroom-kafka\n"
        f"    scrape_interval: {KAFKA_SCRAPE_INTERVAL_S}s\n    scrape_timeout: {KAFKA_SCRAPE_INTERVAL_S}s\n"
        "    static_configs:\n"
        f'      - targets: ["{settings.host}:{settings.kafka_metrics_port}"]\n'
        "        labels: {pod: kafka-0}\n"
    ) if settings.kafka_metrics_port and not settings.external_kafka else ""
    text = Template(TEMPLATE.read_text()).substitute(
        **targets,
        kafka_job=kafka_job,
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
    settings = Settings.from_env()
    run_dir = settings.run_dir / "prometheus"
    run_dir.mkdir(parents=True, exist_ok=True)
    config = render_config(run_dir / "prometheus.yml", settings)
    port = int(os.environ.get("PROMETHEUS_PORT") or 9090)
    print(f"Prometheus on http://127.0.0.1:{port} (config {config})", flush=True)
    argv = command(config, run_dir / "data", port)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    sys.exit(main())
