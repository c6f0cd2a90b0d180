"""skaffold.yaml is valid v4beta14, builds the four images the chart runs, deploys the three
releases in order into the restricted namespace, and its profiles patch what they mean to.
Plus the kind cluster config that makes the ingress reachable from the host."""

import re
import sys
from pathlib import Path

import pytest
import yaml
from k8s_manifests import HELM_DIR, ROOT, helm_template, parse, run

SCHEMA = Path(__file__).parent / "schemas" / "skaffold-v4beta14.json"
CONFIG = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
RELEASES = CONFIG["deploy"]["helm"]["releases"]


def check_jsonschema():
    return str(Path(sys.executable).parent / "check-jsonschema")


def schema_file():
    return str(SCHEMA)


def test_skaffold_yaml_validates_against_the_v4beta14_schema():
    assert CONFIG["apiVersion"] == "skaffold/v4beta14"
    result = run(check_jsonschema(), "--schemafile", schema_file(), "skaffold.yaml", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_catches_a_misspelt_field(tmp_path):
    broken = tmp_path / "skaffold.yaml"
    broken.write_text((ROOT / "skaffold.yaml").read_text().replace("setValueTemplates:", "setValueTemplate:"))
    result = run(check_jsonschema(), "--schemafile", schema_file(), str(broken), check=False)
    assert result.returncode != 0 and "setValueTemplate" in result.stdout


def chatroom_values():
    return yaml.safe_load((HELM_DIR / "chatroom" / "values.yaml").read_text())


def test_artifacts_are_the_images_the_chart_runs():
    artifacts = {a["image"]: a for a in CONFIG["build"]["artifacts"]}
    values = chatroom_values()
    assert set(artifacts) == {values[c]["image"]["repository"] for c in ("ingest", "bridge", "stream", "web")}
    for component in ("ingest", "bridge", "stream", "web"):
        artifact = artifacts[values[component]["image"]["repository"]]
        assert artifact["context"] == "."  # the Dockerfiles copy from the repository root
        dockerfile = artifact["docker"]["dockerfile"]
        assert (ROOT / dockerfile).is_file()
        assert dockerfile == ("web/Dockerfile" if component == "web" else f"services/{component}/Dockerfile")


def test_image_value_templates_name_real_artifacts_and_chart_values():
    """Each setValueTemplates key is a value the chart reads; each template names a built artifact
    (sanitized as skaffold does: '-' -> '_'); repository, tag and digest are set apart (issue 7978)."""
    release = next(r for r in RELEASES if r["name"] == "chatroom")
    templates = release["setValueTemplates"]
    images = {a["image"].replace("-", "_").replace(".", "_").replace("/", "_") for a in CONFIG["build"]["artifacts"]}
    values = chatroom_values()
    for key, template in templates.items():
        node = values
        for part in key.split("."):
            assert part in node, f"{key} is not a value of the chart"
            node = node[part]
        variable, artifact = re.fullmatch(r"\{\{\.(IMAGE_(?:REPO|TAG|DIGEST))_(\w+)\}\}", template).groups()
        assert artifact in images
        field = {"IMAGE_REPO": "repository", "IMAGE_TAG": "tag", "IMAGE_DIGEST": "digest"}[variable]
        assert key.rsplit(".", 1)[1] == field
    for component in ("ingest", "bridge", "stream", "web"):
        assert {f"{component}.image.{f}" for f in ("repository", "tag", "digest")} <= set(templates)


def test_releases_deploy_in_order_into_the_restricted_namespace():
    names = [r["name"] for r in RELEASES]
    assert names == ["redis", "kafka", "chatroom"]
    chatroom = RELEASES[2]
    assert set(chatroom["dependsOn"]) == {"redis", "kafka"}
    namespace = yaml.safe_load((ROOT / "k8s" / "namespace.yaml").read_text())["metadata"]["name"]
    for release in RELEASES:
        assert release["namespace"] == namespace
        assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
        for values_file in release.get("valuesFiles", []):
            assert (ROOT / values_file).is_file()
    [hook] = CONFIG["deploy"]["helm"]["hooks"]["before"]
    assert "k8s/namespace.yaml" in " ".join(hook["host"]["command"])


def admitted_namespaces(values_files):
    """The namespaces the chatroom release's NetworkPolicies admit as its ingress controller."""
    admitted = chatroom_values()["networkPolicy"]["ingressController"]
    for values_file in values_files:
        overrides = yaml.safe_load((ROOT / values_file).read_text())
        admitted = overrides.get("networkPolicy", {}).get("ingressController", admitted)
    return [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for p in admitted]


def ingress_class(values_files):
    name = chatroom_values()["ingress"]["className"]
    for values_file in values_files:
        name = yaml.safe_load((ROOT / values_file).read_text()).get("ingress", {}).get("className", name)
    return name


def test_port_forward_reaches_the_gateway_the_policies_admit():
    """By default Traefik (k8s/traefik-kind.yaml); the ingress-nginx profile switches the
    forward and the chatroom release's values back to ingress-nginx together."""
    [forward] = CONFIG["portForward"]
    assert forward["resourceType"] == "service" and forward["localPort"] == 8080
    assert (forward["resourceName"], forward["namespace"], forward["port"]) == ("traefik", "traefik", 80)
    values_files = RELEASES[2]["valuesFiles"]
    assert admitted_namespaces(values_files) == ["traefik"]
    assert ingress_class(values_files) == "traefik"
    patches = {p["path"]: p["value"] for p in profile("ingress-nginx")["patches"]}
    assert (patches["/portForward/0/resourceName"], patches["/portForward/0/namespace"]) == (
        "ingress-nginx-controller", "ingress-nginx")
    nginx_files = patches["/deploy/helm/releases/2/valuesFiles"]
    assert admitted_namespaces(nginx_files) == ["ingress-nginx"]
    assert ingress_class(nginx_files) == "nginx"


def profile(name):
    return next(p for p in CONFIG["profiles"] if p["name"] == name)


@pytest.mark.parametrize(("name", "context", "active"), [
    ("kind", "kind-chatroom", True), ("kind", "minikube", False),
    ("minikube", "minikube", True), ("minikube", "kind-chatroom", False),
    ("ingress-nginx", "minikube", True), ("ingress-nginx", "kind-chatroom", False),
])
def test_profiles_activate_by_kube_context(name, context, active):
    [activation] = profile(name)["activation"]
    assert bool(re.fullmatch(activation["kubeContext"], context)) is active


def test_profile_patches_target_the_right_releases():
    targets = {"dev": "chatroom", "kind": "kafka", "minikube": "kafka", "ha": "kafka", "ingress-nginx": "chatroom"}
    for name, release in targets.items():
        for patch in profile(name).get("patches", []):
            if patch["path"].startswith("/portForward/"):
                continue  # checked with the port-forward above
            match = re.fullmatch(r"/deploy/helm/releases/(\d+)/(\w+)", patch["path"])
            assert match, patch["path"]
            assert RELEASES[int(match.group(1))]["name"] == release, f"profile {name} patches the wrong release"
            present = match.group(2) in RELEASES[int(match.group(1))]
            assert present is (patch["op"] == "replace"), "an 'add' would replace the whole field"
    assert profile("dev")["activation"] == [{"command": "dev"}]
    assert profile("ha")["patches"][0]["value"] == ["helm/kafka/values-ha.yaml"]


def test_file_sync_puts_each_file_where_the_image_has_it():
    for artifact in CONFIG["build"]["artifacts"]:
        dockerfile = (ROOT / artifact["docker"]["dockerfile"]).read_text()
        for rule in artifact["sync"]["manual"]:
            files = [p.relative_to(ROOT).as_posix() for p in ROOT.glob(rule["src"]) if p.is_file()]
            assert files, f"{rule['src']} matches nothing"
            for path in files:
                in_image = rule["dest"].rstrip("/") + "/" + path.removeprefix(rule.get("strip", ""))
                if artifact["image"] == "chatroom-web":
                    assert f"{path}" in dockerfile and in_image == f"/usr/share/nginx/html/{Path(path).name}"
                else:
                    top = "/".join(path.split("/")[:2])  # services/<name>
                    assert f"COPY --chown=10001:10001 {top} {top}" in dockerfile, f"{path} is not in the image"
                    assert in_image == f"/app/{path}"


def test_kind_cluster_exposes_the_ingress_on_the_host():
    kind = yaml.safe_load((ROOT / "k8s" / "kind-config.yaml").read_text())
    [node] = kind["nodes"]
    assert node["labels"]["ingress-ready"] == "true"
    mapped = {m["containerPort"]: m["hostPort"] for m in node["extraPortMappings"]}
    assert mapped[80] == 80 and mapped[443] == 443
    ingress_nginx = yaml.safe_load((ROOT / "k8s" / "ingress-nginx-kind.yaml").read_text())["controller"]
    assert ingress_nginx["hostPort"]["enabled"] is True
    assert ingress_nginx["nodeSelector"] == {"ingress-ready": "true"}


def test_traefik_values_put_the_controller_on_the_mapped_ports_and_keep_streams_open():
    """k8s/traefik-kind.yaml (keys of the official chart's values.yaml): on the ingress-ready
    node, despite its taint, on host ports 80/443, the default IngressClass `traefik` that
    helm/chatroom/values-traefik.yaml names, and no read deadline on the web entry point
    (Traefik v3's 60 s default would cut every SSE stream)."""
    traefik = yaml.safe_load((ROOT / "k8s" / "traefik-kind.yaml").read_text())
    assert traefik["nodeSelector"] == {"ingress-ready": "true"}
    assert {"key": "node-role.kubernetes.io/control-plane", "operator": "Equal",
            "effect": "NoSchedule"} in traefik["tolerations"]
    assert (traefik["ports"]["web"]["hostPort"], traefik["ports"]["websecure"]["hostPort"]) == (80, 443)
    assert traefik["service"]["type"] == "ClusterIP"
    assert traefik["ingressClass"] == {"enabled": True, "isDefaultClass": True, "name": "traefik"}
    assert ingress_class(["helm/chatroom/values-traefik.yaml"]) == traefik["ingressClass"]["name"]
    assert traefik["ports"]["web"]["transport"]["respondingTimeouts"]["readTimeout"] == "0s"


def test_the_chatroom_release_skaffold_installs_routes_through_traefik_only():
    """Rendered with the release's values files: every Ingress is of the class `traefik`, and
    the NetworkPolicies admit the namespace traefik and no longer ingress-nginx."""
    args = [a for f in RELEASES[2]["valuesFiles"] for a in ("-f", f)]
    docs = parse(helm_template(HELM_DIR / "chatroom", "chatroom", args))
    ingresses = [d for d in docs if d["kind"] == "Ingress"]
    assert ingresses and {d["spec"]["ingressClassName"] for d in ingresses} == {"traefik"}
    policies = yaml.safe_dump([d for d in docs if d["kind"] == "NetworkPolicy"])
    assert "kubernetes.io/metadata.name: traefik" in policies and "ingress-nginx" not in policies
