"""Every chart lints cleanly, with each of its values files, and refuses values that would
deploy something broken."""

import pytest
from k8s_manifests import CHARTS, HELM_DIR, KUBE_VERSIONS, ROOT, helm_template, run, tool


def values_files(chart):
    return sorted(p.relative_to(ROOT) for p in (HELM_DIR / chart).glob("values-*.yaml"))


LINT_CASES = [(chart, None) for chart in CHARTS] + [(chart, f) for chart in CHARTS for f in values_files(chart)]


@pytest.mark.parametrize(("chart", "values"), LINT_CASES, ids=lambda v: str(v))
def test_helm_lint_strict(chart, values):
    args = [tool("helm"), "lint", "--strict", str(HELM_DIR / chart), "--kube-version", KUBE_VERSIONS[-1]]
    if values is not None:
        args += ["-f", str(values)]
    result = run(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout, result.stdout


def test_every_chart_has_a_dev_or_ha_values_file():
    assert values_files("chatroom") and values_files("kafka")


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        # An empty peer list in a NetworkPolicy rule would let everyone in.
        (["--set-json", "networkPolicy.ingressController=[]"], "ingressController"),
        (["--set-json", "networkPolicy.monitoring=[]"], "monitoring"),
        # A digest that is not one would make an image reference no registry resolves.
        (["--set", "ingest.image.digest=latest"], "digest"),
        # Every container needs limits.
        (["--set", "stream.resources.limits=null"], "limits"),
        # A password that cannot go into REDIS_URL as it is.
        (["--set", "redis.auth.existingSecret=,redis.auth.password=p@ss:word"], "password"),
        (["--set", "ingest.replicas=-1"], "replicas"),
        (["--set", "kafka.topic=bad topic"], "topic"),
    ],
    ids=["empty-ingress-peers", "empty-monitoring-peers", "bad-digest", "no-limits", "password-not-url-safe",
         "negative-replicas", "bad-topic"],
)
def test_values_schema_refuses_broken_values(args, complaint):
    result = run(tool("helm"), "template", "chatroom", str(HELM_DIR / "chatroom"), "--kube-version",
                 KUBE_VERSIONS[-1], *args, check=False)
    assert result.returncode != 0, f"rendered despite {args}"
    assert complaint in result.stderr, result.stderr


def test_redis_auth_without_a_password_source_fails_with_a_clear_message():
    result = run(tool("helm"), "template", "chatroom", str(HELM_DIR / "chatroom"), "--kube-version",
                 KUBE_VERSIONS[-1], "--set", "redis.auth.existingSecret=", check=False)
    assert result.returncode != 0
    assert "redis.auth.existingSecret or redis.auth.password" in result.stderr


def test_redis_password_kept_by_the_app_chart_when_no_existing_secret():
    from k8s_manifests import named, parse
    docs = parse(helm_template(HELM_DIR / "chatroom", "chatroom",
                               ["--set", "redis.auth.existingSecret=,redis.auth.password=s3cret"]))
    secret = named(docs, "Secret", "chatroom-redis")
    assert secret["data"]["password"] == "czNjcmV0"  # base64 of s3cret
    ingest = named(docs, "Deployment", "chatroom-ingest")
    env = {e["name"]: e for e in ingest["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "chatroom-redis"
    assert env["REDIS_URL"]["value"] == "redis://:$(REDIS_PASSWORD)@redis:6379/0"


@pytest.mark.parametrize(
    ("chart", "args", "complaint"),
    [
        ("kafka", ["--set", "clusterId=my-cluster"], "clusterId"),
        ("kafka", ["--set", "replicas=0"], "replicas"),
        ("kafka", ["--set", "topic.partitions=0"], "partitions"),
        ("redis", ["--set", "auth.password=p@ss/word"], "password"),
        ("redis", ["--set-json", "networkPolicy.clients=[]"], "clients"),
        # Fewer than three primaries cannot elect a replica in a failover.
        ("redis", ["--set", "cluster.enabled=true,cluster.masters=2"], "masters"),
    ],
    ids=["kafka-cluster-id", "kafka-no-brokers", "kafka-no-partitions", "redis-password", "redis-open-to-all",
         "redis-cluster-too-few-masters"],
)
def test_kafka_and_redis_values_schemas_refuse_broken_values(chart, args, complaint):
    result = run(tool("helm"), "template", chart, str(HELM_DIR / chart), "--kube-version", KUBE_VERSIONS[-1],
                 *args, check=False)
    assert result.returncode != 0, f"rendered despite {args}"
    assert complaint in result.stderr, result.stderr
