"""What the browser and the operators see of the charts: one origin with an unbuffered SSE
route, images exactly as the values say, and the monitoring objects kube-prometheus-stack
picks up (including whatever dashboards and alert rules the chart's files/ hold)."""

import json
import shutil

import pytest
import yaml
from k8s_manifests import HELM_DIR, helm_template, named, of_kind, parse, pod_spec, render, workloads

DIGEST = "sha256:" + "ab" * 32


def test_ingress_routes_one_origin_to_the_three_front_services():
    docs = render("defaults")
    main = named(docs, "Ingress", "chatroom")
    paths = {p["path"]: p["backend"]["service"] for p in main["spec"]["rules"][0]["http"]["paths"]}
    assert paths == {"/api": {"name": "chatroom-ingest", "port": {"name": "http"}},
                     "/": {"name": "chatroom-web", "port": {"name": "http"}}}
    stream = named(docs, "Ingress", "chatroom-stream")
    paths = {p["path"]: p["backend"]["service"] for p in stream["spec"]["rules"][0]["http"]["paths"]}
    assert paths == {"/stream": {"name": "chatroom-stream", "port": {"name": "http"}}}
    assert all(p["pathType"] == "Prefix" for i in (main, stream) for p in i["spec"]["rules"][0]["http"]["paths"])
    # Services expose the named port the Ingress asks for.
    for name in ("chatroom-ingest", "chatroom-web", "chatroom-stream"):
        assert named(docs, "Service", name)["spec"]["ports"][0]["name"] == "http"


def test_sse_route_is_unbuffered_with_long_timeouts_and_only_it():
    docs = render("defaults")
    stream = named(docs, "Ingress", "chatroom-stream")["metadata"]["annotations"]
    assert stream["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(stream["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(stream["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    main = named(docs, "Ingress", "chatroom")["metadata"].get("annotations") or {}
    assert "nginx.ingress.kubernetes.io/proxy-read-timeout" not in main
    assert "nginx.ingress.kubernetes.io/proxy-buffering" not in main


def test_sse_timeouts_outlast_the_heartbeat():
    docs = render("defaults")
    heartbeat = float(named(docs, "ConfigMap", "chatroom-stream")["data"]["STREAM_HEARTBEAT_S"])
    stream = named(docs, "Ingress", "chatroom-stream")["metadata"]["annotations"]
    assert heartbeat * 4 <= int(stream["nginx.ingress.kubernetes.io/proxy-read-timeout"])


def test_ingress_host_class_and_tls_from_values():
    docs = parse(helm_template(HELM_DIR / "chatroom", "chatroom", [
        "--set", "ingress.host=chat.example.org,ingress.className=traefik",
        "--set-json", 'ingress.tls=[{"hosts": ["chat.example.org"], "secretName": "chat-tls"}]']))
    for name in ("chatroom", "chatroom-stream"):
        spec = named(docs, "Ingress", name)["spec"]
        assert spec["ingressClassName"] == "traefik"
        assert spec["rules"][0]["host"] == "chat.example.org"
        assert spec["tls"] == [{"hosts": ["chat.example.org"], "secretName": "chat-tls"}]


def test_gateway_api_routes_with_the_sse_timeout_disabled():
    docs = render("gateway")
    assert of_kind(docs, "Ingress") == []
    main = named(docs, "HTTPRoute", "chatroom")
    stream = named(docs, "HTTPRoute", "chatroom-stream")
    assert main["apiVersion"] == stream["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert main["spec"]["parentRefs"] == [{"name": "chatroom", "sectionName": "http"}]
    rules = {r["matches"][0]["path"]["value"]: r for r in main["spec"]["rules"]}
    assert set(rules) == {"/api", "/"}
    assert rules["/api"]["backendRefs"] == [{"name": "chatroom-ingest", "port": 8001}]
    assert "timeouts" not in rules["/api"]
    [rule] = stream["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/stream"}}]
    assert rule["backendRefs"] == [{"name": "chatroom-stream", "port": 8002}]
    assert rule["timeouts"]["request"] == "0s"


def images(docs):
    return {c["name"]: c["image"] for d in workloads(docs) for c in pod_spec(d)["containers"]}


def test_images_come_from_values_with_optional_digest():
    docs = parse(helm_template(HELM_DIR / "chatroom", "chatroom", [
        "--set", f"image.registry=registry.example.org/team,ingest.image.tag=1.2.3,ingest.image.digest={DIGEST}",
        "--set", "stream.image.repository=other/stream,stream.image.tag=abc123"]))
    found = images(docs)
    assert found["ingest"] == f"registry.example.org/team/chatroom-ingest:1.2.3@{DIGEST}"
    assert found["stream"] == "registry.example.org/team/other/stream:abc123"
    assert found["bridge"] == "registry.example.org/team/chatroom-bridge:0.1.0"  # tag: the appVersion
    assert found["roundtrip"] == found["ingest"]  # helm test runs the ingest image


def test_skaffold_local_build_without_digest_renders_a_clean_reference():
    """skaffold issue 7978: local builds have a tag and no digest; no dangling '@'."""
    docs = parse(helm_template(HELM_DIR / "chatroom", "chatroom", [
        "--set", "ingest.image.repository=chatroom-ingest,ingest.image.tag=552d840-dirty,ingest.image.digest="]))
    assert images(docs)["ingest"] == "chatroom-ingest:552d840-dirty"


def test_kafka_and_redis_images_from_values():
    kafka = parse(helm_template(HELM_DIR / "kafka", "kafka", ["--set", f"image.tag=4.1.1,image.digest={DIGEST}"]))
    assert images(kafka)["kafka"] == f"apache/kafka:4.1.1@{DIGEST}"
    redis = parse(helm_template(HELM_DIR / "redis", "redis",
                                ["--set", "image.repository=redis,image.tag=8.2-alpine,metrics.enabled=true"]))
    assert images(redis)["redis"] == "redis:8.2-alpine"
    server = pod_spec(named(redis, "StatefulSet", "redis"))["containers"][0]
    assert "exec redis-server" in server["command"][-1]
    assert server["readinessProbe"]["exec"]["command"][-1].startswith("redis-cli")
    assert images(redis)["exporter"].startswith("oliver006/redis_exporter:v")
    assert images(render("defaults"))["valkey"] == "valkey/valkey:9.1.1-alpine"


def test_kafka_ha_values_keep_every_acknowledged_message_on_two_brokers():
    docs = render("ha")
    kafka = named(docs, "StatefulSet", "kafka")
    assert kafka["spec"]["replicas"] == 3
    assert kafka["spec"]["podManagementPolicy"] == "Parallel"
    env = {e["name"]: e for e in pod_spec(kafka)["containers"][0]["env"]}
    assert env["KAFKA_MIN_INSYNC_REPLICAS"]["value"] == "2"
    assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"]["value"] == "3"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]["value"] == "3"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]["value"] == "2"
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"]["value"].split(",")
    assert voters == [f"{i}@kafka-{i}.kafka-headless.chatroom.svc.cluster.local:9093" for i in range(3)]
    pod_index = "metadata.labels['apps.kubernetes.io/pod-index']"
    assert env["KAFKA_NODE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == pod_index
    job = named(docs, "Job", "kafka-topics")
    script = pod_spec(job)["containers"][0]["command"][-1]
    assert "--replication-factor 3" in script and "--partitions 6" in script and '"min.insync.replicas=2"' in script
    assert named(docs, "PodDisruptionBudget", "kafka")["spec"]["maxUnavailable"] == 1


def test_kafka_single_broker_defaults_and_discovery():
    docs = render("defaults")
    kafka = named(docs, "StatefulSet", "kafka")
    env = {e["name"]: e.get("value") for e in pod_spec(kafka)["containers"][0]["env"]}
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "1" and env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_ADVERTISED_LISTENERS"] == \
        "PLAINTEXT://$(POD_NAME).kafka-headless.$(POD_NAMESPACE).svc.cluster.local:9092"
    # $(POD_NAME) only expands if POD_NAME is defined earlier in the list.
    names = [e["name"] for e in pod_spec(kafka)["containers"][0]["env"]]
    assert names.index("POD_NAME") < names.index("KAFKA_ADVERTISED_LISTENERS")
    headless = named(docs, "Service", "kafka-headless")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert kafka["spec"]["serviceName"] == "kafka-headless"
    assert kafka["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"
    # No Service is named "kafka": its service links would become broker properties.
    assert "kafka" not in {d["metadata"]["name"] for d in of_kind(docs, "Service")}


def test_redis_password_from_secret_never_on_the_command_line():
    docs = render("defaults")
    redis = named(docs, "StatefulSet", "redis")
    container = pod_spec(redis)["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["REDISCLI_AUTH"]["valueFrom"]["secretKeyRef"] == {"name": "redis", "key": "password"}
    assert "exec valkey-server" in container["command"][-1]
    assert "requirepass" not in " ".join(container.get("args", []))
    assert "PONG" in " ".join(container["readinessProbe"]["exec"]["command"])
    secret = named(docs, "Secret", "redis")
    assert len(secret["data"]["password"]) >= 40  # 32 random characters, base64
    # The app reads the very same Secret.
    ingest = named(docs, "Deployment", "chatroom-ingest")
    app_env = {e["name"]: e for e in pod_spec(ingest)["containers"][0]["env"]}
    assert app_env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "redis", "key": "password"}


def test_redis_existing_secret_and_persistence():
    docs = parse(helm_template(HELM_DIR / "redis", "redis", ["--set", "auth.existingSecret=mine",
                                                             "-f", "helm/redis/values-persistent.yaml"]))
    assert of_kind(docs, "Secret") == []
    redis = named(docs, "StatefulSet", "redis")
    assert pod_spec(redis)["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "mine"
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert "appendonly yes" in named(docs, "ConfigMap", "redis")["data"]["valkey.conf"]


def test_the_job_names_do_not_depend_on_the_release_name():
    text = helm_template(HELM_DIR / "chatroom", "team-chat", ["--set", "monitoring.serviceMonitor.enabled=true"])
    monitors = of_kind(parse(text), "ServiceMonitor")
    assert {m["spec"]["endpoints"][0]["relabelings"][0]["replacement"] for m in monitors} == {
        "chatroom-ingest", "chatroom-stream", "chatroom-bridge"}


def test_monitoring_objects_carry_the_release_label():
    docs = render("monitoring")
    monitors = of_kind(docs, "ServiceMonitor", "PodMonitor")
    assert {(m["kind"], m["metadata"]["name"]) for m in monitors} >= {
        (kind, f"chatroom-{s}") for kind in ("ServiceMonitor", "PodMonitor") for s in ("ingest", "stream", "bridge")}
    assert ("ServiceMonitor", "redis") in {(m["kind"], m["metadata"]["name"]) for m in monitors}
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["release"] == "kps", monitor["metadata"]["name"]
    service_monitor = named(docs, "ServiceMonitor", "chatroom-stream")
    assert service_monitor["spec"]["endpoints"][0]["port"] == "http"
    assert service_monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert service_monitor["spec"]["selector"]["matchLabels"] == \
        named(docs, "Service", "chatroom-stream")["spec"]["selector"]
    # Both name the job chatroom-<service>, which the dashboards and alert rules select on.
    fixed_job = [{"targetLabel": "job", "replacement": "chatroom-bridge"}]
    assert named(docs, "PodMonitor", "chatroom-bridge")["spec"]["podMetricsEndpoints"][0]["relabelings"] == fixed_job
    assert named(docs, "ServiceMonitor", "chatroom-bridge")["spec"]["endpoints"][0]["relabelings"] == fixed_job
    # Off by default: a cluster without the Prometheus Operator's CRDs would refuse them.
    assert of_kind(render("defaults"), "ServiceMonitor", "PodMonitor", "PrometheusRule") == []


KAFKA_METRICS_ON = ["--set", "metrics.enabled=true,metrics.podMonitor.enabled=true,metrics.podMonitor.release=kps"]
KAFKA_METRICS_CONFIG = HELM_DIR / "kafka" / "files" / "metrics.yaml"


def test_kafka_metrics_agent_config_port_and_pod_monitor_with_the_fixed_job():
    docs = parse(helm_template(HELM_DIR / "kafka", "events", KAFKA_METRICS_ON))
    # The exporter's rules as the chart's file holds them (the local stack runs the same file).
    config = named(docs, "ConfigMap", "events-kafka-metrics")
    assert yaml.safe_load(config["data"]["metrics.yaml"]) == yaml.safe_load(KAFKA_METRICS_CONFIG.read_text())
    broker = named(docs, "StatefulSet", "events-kafka")
    pod = pod_spec(broker)
    container = pod["containers"][0]
    assert {"name": "metrics", "containerPort": 9404, "protocol": "TCP"} in container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KAFKA_OPTS"] == ("-javaagent:/opt/jmx-exporter/jmx_prometheus_javaagent.jar=9404:"
                                 "/etc/kafka/metrics/metrics.yaml")
    mount = next(m for m in container["volumeMounts"] if m["name"] == "metrics")
    assert mount == {"name": "metrics", "mountPath": "/etc/kafka/metrics", "readOnly": True}
    volume = next(v for v in pod["volumes"] if v["name"] == "metrics")
    assert volume["configMap"]["name"] == "events-kafka-metrics"
    # A changed exporter configuration restarts the brokers.
    assert "checksum/metrics" in broker["spec"]["template"]["metadata"]["annotations"]
    # The job is chatroom-kafka whatever the release is called: the alerts select it.
    monitor = named(docs, "PodMonitor", "events-kafka")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["selector"]["matchLabels"] == broker["spec"]["selector"]["matchLabels"]
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    assert endpoint["relabelings"] == [{"targetLabel": "job", "replacement": "chatroom-kafka"}]
    # The broker's NetworkPolicy admits the scrape from the monitoring namespace on that port.
    policy = named(docs, "NetworkPolicy", "events-kafka")
    scrape = [r for r in policy["spec"]["ingress"] if r["ports"] == [{"protocol": "TCP", "port": 9404}]]
    assert [r["from"] for r in scrape] == [[{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]]


def test_kafka_metrics_port_and_agent_path_from_values():
    docs = parse(helm_template(HELM_DIR / "kafka", "kafka", [
        "--set", "metrics.enabled=true,metrics.port=9500,metrics.agentJar=/opt/agent/jmx.jar"]))
    container = pod_spec(named(docs, "StatefulSet", "kafka"))["containers"][0]
    assert {"name": "metrics", "containerPort": 9500, "protocol": "TCP"} in container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["KAFKA_OPTS"] == "-javaagent:/opt/agent/jmx.jar=9500:/etc/kafka/metrics/metrics.yaml"
    ports = {p["port"] for r in named(docs, "NetworkPolicy", "kafka")["spec"]["ingress"] for p in r["ports"]}
    assert ports == {9092, 9093, 9500}
    # Metrics on, the PodMonitor still off: a cluster without the Operator's CRDs refuses it.
    assert of_kind(docs, "PodMonitor") == []


def test_kafka_metrics_off_by_default_render_nothing_of_them():
    """The apache/kafka image has no agent: a broker told to load it would not start."""
    for args in ([], ["--set", "metrics.podMonitor.enabled=true"]):
        docs = parse(helm_template(HELM_DIR / "kafka", "kafka", args))
        assert [d["metadata"]["name"] for d in of_kind(docs, "ConfigMap", "PodMonitor")] == []
        broker = named(docs, "StatefulSet", "kafka")
        pod = pod_spec(broker)
        container = pod["containers"][0]
        assert "metrics" not in {p["name"] for p in container["ports"]}
        assert "KAFKA_OPTS" not in {e["name"] for e in container["env"]}
        assert "metrics" not in {v["name"] for v in pod["volumes"]}
        assert "checksum/metrics" not in broker["spec"]["template"]["metadata"]["annotations"]
        ports = {p["port"] for r in named(docs, "NetworkPolicy", "kafka")["spec"]["ingress"] for p in r["ports"]}
        assert ports == {9092, 9093}


@pytest.fixture
def chart_copy(tmp_path):
    """A copy of the app chart whose files/ the test fills."""
    target = tmp_path / "chatroom"
    shutil.copytree(HELM_DIR / "chatroom", target)
    shutil.rmtree(target / "files" / "dashboards", ignore_errors=True)
    shutil.rmtree(target / "files" / "alerts", ignore_errors=True)
    return target


MONITORING_ON = ["--set", "monitoring.prometheusRule.enabled=true,monitoring.dashboards.enabled=true,"
                          "monitoring.release=kps,monitoring.dashboards.folder=Chatroom"]


def test_dashboards_and_rules_render_whatever_files_hold(chart_copy):
    (chart_copy / "files" / "dashboards").mkdir(parents=True)
    for name in ("chat-overview", "chat_delivery"):
        (chart_copy / "files" / "dashboards" / f"{name}.json").write_text(json.dumps({"title": name, "panels": []}))
    (chart_copy / "files" / "alerts").mkdir(parents=True)
    groups = [{"name": "chat", "rules": [{"alert": "ChatDown", "expr": "up == 0", "for": "5m"}]}]
    (chart_copy / "files" / "alerts" / "rules.yaml").write_text(yaml.safe_dump(groups))
    docs = parse(helm_template(chart_copy, "chatroom", MONITORING_ON))
    dashboards = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert {d["metadata"]["name"] for d in dashboards} == {"chatroom-dashboard-chat-overview",
                                                            "chatroom-dashboard-chat-delivery"}
    for dashboard in dashboards:
        [(key, text)] = dashboard["data"].items()
        assert json.loads(text)["title"] == key.removesuffix(".json")
        assert dashboard["metadata"]["annotations"]["grafana_folder"] == "Chatroom"
    rule = named(docs, "PrometheusRule", "chatroom")
    assert rule["spec"]["groups"] == groups
    assert rule["metadata"]["labels"]["release"] == "kps"


def test_rules_file_may_also_hold_a_groups_key(chart_copy):
    (chart_copy / "files" / "alerts").mkdir(parents=True)
    groups = [{"name": "chat", "rules": [{"record": "chat:up", "expr": "sum(up)"}]}]
    (chart_copy / "files" / "alerts" / "rules.yaml").write_text("# alert rules\n" + yaml.safe_dump({"groups": groups}))
    rule = named(parse(helm_template(chart_copy, "chatroom", MONITORING_ON)), "PrometheusRule", "chatroom")
    assert rule["spec"]["groups"] == groups


def test_no_files_no_dashboards_no_rules(chart_copy):
    docs = parse(helm_template(chart_copy, "chatroom", MONITORING_ON))
    assert of_kind(docs, "PrometheusRule") == []
    assert not [d for d in of_kind(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]]


def test_the_charts_own_dashboards_and_rules_render():
    """Whatever files/dashboards/*.json and files/alerts/rules.yaml the chart ships: each becomes an object."""
    chart = HELM_DIR / "chatroom"
    docs = render("monitoring")
    dashboards = sorted(p.name for p in (chart / "files" / "dashboards").glob("*.json"))
    rendered = sorted(k for d in of_kind(docs, "ConfigMap") if "grafana_dashboard" in d["metadata"]["labels"]
                      for k in d["data"])
    assert rendered == dashboards
    for name in dashboards:
        json.loads((chart / "files" / "dashboards" / name).read_text())  # valid JSON, or Grafana shows nothing
    rules = chart / "files" / "alerts" / "rules.yaml"
    prometheus_rules = of_kind(docs, "PrometheusRule")
    if rules.exists() and rules.read_text().strip():
        [rule] = prometheus_rules
        assert rule["spec"]["groups"] and all("name" in g and "rules" in g for g in rule["spec"]["groups"])
    else:
        assert prometheus_rules == []


def test_one_tag_for_every_image_unless_a_component_has_its_own():
    docs = parse(helm_template(HELM_DIR / "chatroom", "chatroom", ["--set", "image.tag=2.0.0,web.image.tag=2.0.1"]))
    found = images(docs)
    assert found["ingest"] == "chatroom-ingest:2.0.0" and found["bridge"] == "chatroom-bridge:2.0.0"
    assert found["web"] == "chatroom-web:2.0.1"


def test_ingest_and_stream_share_the_session_key_from_a_secret():
    """Both sign and check the same session cookie; nothing else gets the key."""
    docs = render("defaults")
    secret = named(docs, "Secret", "chatroom-session")
    assert len(secret["data"]["session-secret"]) >= 64  # 48 random characters, base64
    apps = {d["metadata"]["name"]: d for d in workloads(docs) if d["metadata"]["name"].startswith("chatroom-")}
    assert {"chatroom-ingest", "chatroom-stream", "chatroom-bridge", "chatroom-web"} <= set(apps)
    for name, workload in apps.items():
        env = {e["name"]: e for e in pod_spec(workload)["containers"][0].get("env", [])}
        if name in ("chatroom-ingest", "chatroom-stream"):
            assert env["SESSION_SECRET"]["valueFrom"]["secretKeyRef"] == {"name": "chatroom-session",
                                                                           "key": "session-secret"}
        else:
            assert "SESSION_SECRET" not in env
    mine = parse(helm_template(HELM_DIR / "chatroom", "chatroom", ["--set", "sessions.existingSecret=mine"]))
    assert "chatroom-session" not in {d["metadata"]["name"] for d in of_kind(mine, "Secret")}
    stream = pod_spec(named(mine, "Deployment", "chatroom-stream"))["containers"][0]
    assert {e["name"]: e for e in stream["env"]}["SESSION_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "mine"


SIGN_IN_HEADERS = ["X-Forwarded-User", "X-Auth-Request-User", "X-Forwarded-Email", "X-Auth-Request-Email"]


def cleared_by_snippet(ingress):
    snippet = ingress["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/configuration-snippet", "")
    return [line.split()[1] for line in snippet.splitlines() if line.startswith("proxy_set_header") and
            line.endswith('"";')]


def test_the_ingress_removes_the_sign_in_headers_a_client_sends():
    own = json.dumps({"nginx.ingress.kubernetes.io/configuration-snippet": "more_set_headers 'A: b';"})
    docs = parse(helm_template(HELM_DIR / "chatroom", "chatroom", [
        "--set", "config.TRUSTED_USER_HEADER=X-Remote-User", "--set-json", f"ingress.annotations={own}"]))
    for name in ("chatroom", "chatroom-stream"):
        ingress = named(docs, "Ingress", name)
        assert cleared_by_snippet(ingress) == [*SIGN_IN_HEADERS, "X-Remote-User"]
        # An operator's own snippet is kept, before the chart's lines.
        snippet = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/configuration-snippet"]
        assert snippet.startswith("more_set_headers 'A: b';\n")


def test_the_gateway_routes_remove_the_sign_in_headers_a_client_sends():
    docs = parse(helm_template(HELM_DIR / "chatroom", "chatroom", [
        "--set", "gateway.enabled=true,ingress.enabled=false,config.TRUSTED_USER_HEADER=x-forwarded-user"]))
    for name in ("chatroom", "chatroom-stream"):
        for rule in named(docs, "HTTPRoute", name)["spec"]["rules"]:
            [modifier] = [f for f in rule["filters"] if f["type"] == "RequestHeaderModifier"]
            assert modifier["requestHeaderModifier"]["remove"] == SIGN_IN_HEADERS  # the same header once


def test_behind_a_sign_in_proxy_the_ingress_passes_its_header_on():
    docs = parse(helm_template(HELM_DIR / "chatroom", "chatroom", [
        "--set", "signIn.proxySetsHeader=true,gateway.enabled=true,config.TRUSTED_USER_HEADER=X-Forwarded-User"]))
    for name in ("chatroom", "chatroom-stream"):
        assert cleared_by_snippet(named(docs, "Ingress", name)) == []
        assert all("filters" not in rule for rule in named(docs, "HTTPRoute", name)["spec"]["rules"])


def allowed_hosts(docs):
    return {name: named(docs, "ConfigMap", f"chatroom-{name}")["data"].get("ALLOWED_HOSTS")
            for name in ("ingest", "stream", "bridge")}


def test_services_allow_the_hosts_the_chart_routes():
    assert allowed_hosts(render("defaults")) == {"ingest": "*", "stream": "*", "bridge": None}
    docs = parse(helm_template(HELM_DIR / "chatroom", "chatroom", [
        "--set", "ingress.host=chat.example.org,gateway.enabled=true",
        "--set-json", 'gateway.hostnames=["chat.example.org", "talk.example.org"]']))
    hosts = "chat.example.org,talk.example.org"
    assert allowed_hosts(docs) == {"ingest": hosts, "stream": hosts, "bridge": None}
    docs = parse(helm_template(HELM_DIR / "chatroom", "chatroom", [
        "--set", "ingress.host=chat.example.org,config.ALLOWED_HOSTS=chat.example.org:8443"]))
    assert allowed_hosts(docs)["ingest"] == "chat.example.org:8443"  # the operator's own list wins


def test_the_api_has_a_per_address_connection_cap_at_the_ingress():
    docs = render("defaults")
    main = named(docs, "Ingress", "chatroom")["metadata"]["annotations"]
    stream = named(docs, "Ingress", "chatroom-stream")["metadata"]["annotations"]
    assert main["nginx.ingress.kubernetes.io/limit-connections"] == "20"
    assert stream["nginx.ingress.kubernetes.io/limit-connections"] == "100"


def test_redis_is_bounded_and_refuses_rather_than_evicts():
    """Full Redis refuses writes (ingest: 503 with Retry-After; an alert at 80%): an eviction
    policy would silently drop a room's window, floor or deleted set, which the stream needs."""
    conf = named(render("defaults"), "ConfigMap", "redis")["data"]["valkey.conf"].splitlines()
    assert "maxmemory 256mb" in conf
    assert "maxmemory-policy noeviction" in conf
