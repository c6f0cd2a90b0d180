"""redis.cluster.enabled puts every service in Redis Cluster mode, with the topic's partition
count the keys are placed by; off (the default), the services run as on one Redis."""

from k8s_manifests import HELM_DIR, KUBE_VERSIONS, helm_template, named, parse, run, tool

SERVICES = [("Deployment", "chatroom-ingest"), ("StatefulSet", "chatroom-bridge"), ("Deployment", "chatroom-stream")]


def service_env(docs, kind, name):
    container = named(docs, kind, name)["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_cluster_mode_reaches_every_service_and_is_off_by_default():
    on = parse(helm_template(HELM_DIR / "chatroom", "chatroom",
                             ["--set", "redis.cluster.enabled=true,redis.cluster.topicPartitions=12"]))
    off = parse(helm_template(HELM_DIR / "chatroom", "chatroom", []))
    for kind, name in SERVICES:
        env = service_env(on, kind, name)
        assert (env["REDIS_MODE"], env["KAFKA_TOPIC_PARTITIONS"]) == ("cluster", "12")
        assert "REDIS_MODE" not in service_env(off, kind, name)


def test_cluster_mode_refuses_a_database_other_than_0():
    result = run(tool("helm"), "template", "chatroom", str(HELM_DIR / "chatroom"), "--kube-version",
                 KUBE_VERSIONS[-1], "--set", "redis.cluster.enabled=true,redis.db=2", check=False)
    assert result.returncode != 0
    assert "database 0 only" in result.stderr
