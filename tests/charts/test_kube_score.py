"""kube-score's best-practice checks pass on what the charts render, with one ignored check.

Ignored, and why:
- container-image-pull-policy: it wants `Always`. On kind and minikube the images are loaded
  into the nodes, not pulled, and `Always` would fail them; in a registry, the chart's
  image digests pin exactly what runs.
- deployment-replicas, for values-dev.yaml only: one replica of each on a one-node kind or
  minikube cluster is the point of those values.
"""

import pytest
from k8s_manifests import render_text, run, tool

IGNORED = ["container-image-pull-policy"]
IGNORED_IN = {"dev": ["deployment-replicas"]}


@pytest.mark.parametrize("scenario", ["defaults", "ha", "monitoring", "dev", "redis-cluster"])
def test_kube_score_passes(scenario, tmp_path):
    path = tmp_path / f"{scenario}.yaml"
    path.write_text(render_text(scenario))
    args = [tool("kube-score"), "score", "--output-format", "ci"]
    for check in IGNORED + IGNORED_IN.get(scenario, []):
        args += ["--ignore-test", check]
    result = run(*args, str(path), check=False)
    problems = [line for line in result.stdout.splitlines() if line.startswith(("[CRITICAL]", "[WARNING]"))]
    assert result.returncode == 0 and not problems, "\n".join(problems) or result.stderr
    assert result.stdout.count("[OK]") > 50  # it did look at the objects
