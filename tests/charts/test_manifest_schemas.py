"""Every rendered manifest, for every values scenario and Kubernetes version, is valid
against that version's API schemas, strictly (an unknown or misspelt field fails).

Two validators read the same schemas (the ones the kubernetes-validate package bundles):
kubernetes-validate itself, and kubeconform, for which the schemas' references are pointed
at a local copy of their definitions. Custom resources (ServiceMonitor, PodMonitor,
PrometheusRule, HTTPRoute) have no schema there: they are skipped here, and their content
is checked in test_routing_and_monitoring.py.
"""

import os
from pathlib import Path

import kubernetes_validate
import pytest
from k8s_manifests import CUSTOM_KINDS, KUBE_VERSIONS, SCENARIOS, render, render_text, run, tool

SCHEMAS = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_kubernetes_validate_strict(scenario, kube_version):
    docs = render(scenario, kube_version)
    checked, errors = 0, []
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message} at {list(error.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: no schema for {doc['apiVersion']}")
    assert not errors, "\n".join(errors)
    assert checked >= 30, f"only {checked} manifests validated"


@pytest.fixture(scope="session")
def standalone_schemas(tmp_path_factory):
    """kubeconform's layout of the bundled schemas: <version>-standalone-strict/<kind>-<group>-<version>.json,
    with each reference to the shared definitions pointed at a local file."""
    root = tmp_path_factory.mktemp("kubeconform-schemas")
    for version in KUBE_VERSIONS:
        source = SCHEMAS / f"v{version}-local-strict"
        target = root / f"v{version}-standalone-strict"
        target.mkdir()
        definitions = target / "_definitions.json"
        definitions.write_text((source / "_definitions.json").read_text())
        url = definitions.as_uri()
        for schema in source.glob("*.json"):
            if schema.name != "_definitions.json":
                (target / schema.name).write_text(schema.read_text().replace('"/api/_definitions.json', f'"{url}'))
    return root


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_kubeconform_strict(kube_version, standalone_schemas, tmp_path):
    files = []
    for scenario in SCENARIOS:
        path = tmp_path / f"{scenario}.yaml"
        path.write_text(render_text(scenario, kube_version))
        files.append(str(path))
    location = os.path.join(standalone_schemas, "{{.NormalizedKubernetesVersion}}-standalone{{.StrictSuffix}}",
                            "{{.ResourceKind}}{{.KindSuffix}}.json")
    result = run(tool("kubeconform"), "-strict", "-summary", "-output", "text", "-kubernetes-version", kube_version,
                 "-schema-location", location, "-skip", ",".join(sorted(CUSTOM_KINDS)), *files, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    # "Summary: N resources found in M files - Valid: N, Invalid: 0, Errors: 0, Skipped: K"
    summary = result.stdout.strip().splitlines()[-1]
    valid = int(summary.split("Valid: ")[1].split(",")[0])
    expected = sum(1 for s in SCENARIOS for d in render(s, kube_version) if d["kind"] not in CUSTOM_KINDS)
    assert valid == expected, summary


def test_kubeconform_catches_an_invalid_manifest(standalone_schemas, tmp_path):
    """The offline schemas really are applied: a misspelt field and a wrong type fail."""
    text = render_text("defaults").replace("revisionHistoryLimit: 3", "revisionHistoryLimit: 3\n  replica: 2", 1)
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    location = os.path.join(standalone_schemas, "{{.NormalizedKubernetesVersion}}-standalone{{.StrictSuffix}}",
                            "{{.ResourceKind}}{{.KindSuffix}}.json")
    result = run(tool("kubeconform"), "-strict", "-kubernetes-version", KUBE_VERSIONS[-1], "-schema-location",
                 location, "-skip", ",".join(sorted(CUSTOM_KINDS)), str(path), check=False)
    assert result.returncode != 0
    assert "replica" in result.stdout
