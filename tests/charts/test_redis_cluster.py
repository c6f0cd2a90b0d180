"""The redis chart's cluster mode renders a Redis Cluster as it is run in production: nodes
that keep their identity and announce stable names, created once, with the single node's
password and hardening; and the single node stays the default."""

import re

from k8s_manifests import HELM_DIR, containers, helm_template, is_hook, named, of_kind, parse, pod_spec, render

CLUSTER = ["-f", "helm/redis/values-cluster.yaml"]


def redis_docs(args=()):
    return parse(helm_template(HELM_DIR / "redis", "redis", list(args)))


def cluster_config(docs):
    return named(docs, "ConfigMap", "redis")["data"]


def test_default_is_one_node_without_cluster_objects():
    docs = redis_docs()
    assert named(docs, "StatefulSet", "redis")["spec"]["replicas"] == 1
    assert "cluster-enabled" not in cluster_config(docs)["valkey.conf"]
    assert of_kind(docs, "Job") == []


def test_masters_times_one_plus_replicas_nodes_with_a_claim_each():
    for masters, replicas, nodes in ((3, 1, 6), (5, 2, 15), (3, 0, 3)):
        docs = redis_docs([*CLUSTER, "--set", f"cluster.masters={masters},cluster.replicasPerMaster={replicas}"])
        sts = named(docs, "StatefulSet", "redis")
        assert sts["spec"]["replicas"] == nodes
        assert f"--cluster-replicas {replicas} " in cluster_config(docs)["create.sh"]
        assert f'-lt {nodes} ]' in cluster_config(docs)["create.sh"]
    assert sts["spec"]["serviceName"] == "redis-headless"
    claims = sts["spec"]["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["data"]
    mounts = {m["name"]: m["mountPath"] for m in containers(sts)[0]["volumeMounts"]}
    assert mounts["data"] == "/data"
    assert not any(v["name"] == "data" for v in pod_spec(sts)["volumes"]), "data must be the claim, not an emptyDir"


def test_nodes_keep_nodes_conf_on_the_claim_and_announce_their_dns_name():
    docs = redis_docs(CLUSTER)
    conf = cluster_config(docs)
    lines = set(conf["valkey.conf"].splitlines())
    for line in ("cluster-enabled yes", "cluster-config-file /data/nodes.conf", "cluster-port 16379",
                 "cluster-preferred-endpoint-type hostname", "include /run/valkey/auth.conf"):
        assert line in lines, line
    # The name is the pod's own under the headless Service, which publishes not-ready pods.
    assert 'me="${POD_NAME}.redis-headless.chatroom.svc.cluster.local"' in conf["start.sh"]
    assert "cluster-announce-hostname" in conf["start.sh"]
    headless = named(docs, "Service", "redis-headless")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert {p["port"] for p in headless["spec"]["ports"]} == {6379, 16379}
    env = {e["name"]: e for e in containers(named(docs, "StatefulSet", "redis"))[0]["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_password_from_the_charts_secret_as_requirepass_and_masterauth():
    docs = redis_docs([*CLUSTER, "--set", "auth.existingSecret=mine,auth.existingSecretKey=pw"])
    start = cluster_config(docs)["start.sh"]
    assert "requirepass" in start and "masterauth" in start
    for workload in (named(docs, "StatefulSet", "redis"), named(docs, "Job", "redis-cluster-create")):
        env = {e["name"]: e for e in containers(workload)[0]["env"]}
        assert env["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"] == {"name": "mine", "key": "pw"}
        # Never on a command line, where `ps` and the pod spec would show it.
        assert "REDISCLI_AUTH" not in " ".join(containers(workload)[0]["command"])


def test_create_job_is_a_hook_that_creates_only_an_unformed_cluster():
    docs = redis_docs(CLUSTER)
    job = named(docs, "Job", "redis-cluster-create")
    assert is_hook(job)
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    script = cluster_config(docs)["create.sh"]
    # The create runs in the branch where the first node knows no other node.
    assert 'if [ "$known" -gt 1 ]; then formed="$address"; fi' in script
    branch = re.search(r'if \[ -n "\$formed" \]; then\n(.*?)\n\s*else\n(.*?)\n\s*fi', script, re.S)
    assert branch and "--cluster create" not in branch.group(1) and "--cluster create" in branch.group(2)
    assert "cluster_state:ok" in script
    assert job["spec"]["activeDeadlineSeconds"] > 0


def test_client_service_is_the_seed_the_chatroom_chart_names():
    """The chatroom chart's redis.host defaults to `redis`: the same name in both modes."""
    service = named(redis_docs(CLUSTER), "Service", "redis")
    assert service["spec"]["type"] == "ClusterIP"
    assert [p["port"] for p in service["spec"]["ports"]] == [6379]


def test_one_node_down_at_a_time():
    pdb = named(redis_docs(CLUSTER), "PodDisruptionBudget", "redis")
    assert pdb["spec"]["maxUnavailable"] == 1


def test_readiness_waits_for_the_cluster_but_not_for_the_create_job():
    sts = named(redis_docs(CLUSTER), "StatefulSet", "redis")
    probe = " ".join(containers(sts)[0]["readinessProbe"]["exec"]["command"])
    assert "cluster_state:ok" in probe and "cluster_known_nodes:1" in probe


def test_single_node_rendering_is_what_it_was():
    """cluster.enabled=false renders exactly what a chart without cluster mode renders."""
    explicit = redis_docs(["--set", "cluster.enabled=false,auth.password=p"])
    default = redis_docs(["--set", "auth.password=p"])
    assert explicit == default
    assert {d["kind"] for d in render("defaults") if d["metadata"]["name"].startswith("redis")} == {
        "ConfigMap", "NetworkPolicy", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount", "StatefulSet"}
