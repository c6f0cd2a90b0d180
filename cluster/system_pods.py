"""The cluster's own pods, as kind and k3s run them: CoreDNS (a Deployment labelled
`k8s-app: kube-dns` and the Service `kube-dns` at DNS_SERVICE_IP, in kube-system: the address
kubelet gives the pods as their resolver) and Traefik (a Deployment in the namespace
INGRESS_NAMESPACE serving the Ingresses of the class INGRESS_CLASS, its entry point a hostPort on
NODE_IP:80), and metrics-server in kube-system (the resource metrics API, metrics.k8s.io, that
`kubectl top` and the HorizontalPodAutoscalers read: it scrapes each kubelet's
/metrics/resource), and kube-router's firewall in kube-system (a DaemonSet on the node's network:
it enforces the NetworkPolicies with iptables and ipset). Each reads the API server through the
`kubernetes` Service with a ServiceAccount of its own, allowed what its upstream manifests allow.
The images are cluster/images/build.sh's (the binaries of cluster/build.sh alone in an image;
kube-router's with Debian's iptables and ipset)."""

import json
from typing import Any

from cluster.layout import CLUSTER_DOMAIN, DNS_SERVICE_IP, INGRESS_CLASS, INGRESS_NAMESPACE, NODE_IP, SERVICE_CIDR

Manifest = dict[str, Any]

# Both listen below 1024 as a user, not root: the pod's own network namespace lets it
# (a sysctl Kubernetes counts as safe, allowed by Pod Security's baseline and restricted).
LOW_PORTS = {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]}
CONTAINER_SECURITY = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                      "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
COREDNS_PROBE_PORTS = {"health": 8080, "ready": 8181}
TRAEFIK_PING_PORT = 8082

COREFILE = f"""\
.:53 {{
    errors
    health :{COREDNS_PROBE_PORTS['health']}
    ready :{COREDNS_PROBE_PORTS['ready']}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loadbalance
}}
"""

# No timeout on reading a request or on the answer: an SSE response lasts as long as its reader
# (text/event-stream is passed on as written, unbuffered). ingressEndpoint: the address written
# in the status of the Ingresses it serves.
TRAEFIK_CONFIG = {
    "entryPoints": {
        "web": {"address": ":80",
                "transport": {"respondingTimeouts": {"readTimeout": "0s", "writeTimeout": "0s",
                                                     "idleTimeout": "180s"}}},
        "ping": {"address": f":{TRAEFIK_PING_PORT}"}},
    "ping": {"entryPoint": "ping"},
    "providers": {"kubernetesIngress": {"ingressClass": INGRESS_CLASS, "ingressEndpoint": {"ip": NODE_IP}}},
    "global": {"checkNewVersion": False, "sendAnonymousUsage": False},
    "log": {"level": "WARN"},
}


def _access(name: str, namespace: str, rules: list[Manifest]) -> list[Manifest]:
    """A ServiceAccount ``name`` in ``namespace`` and a ClusterRole of ``rules`` bound to it."""
    return [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
             "metadata": {"name": f"system:{name}"}, "rules": rules},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": f"system:{name}"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"system:{name}"},
             "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]}]


def _deployment(name: str, namespace: str, labels: dict[str, str], container: Manifest,
                config: tuple[str, str]) -> Manifest:
    """One replica of ``container``, the ConfigMap ``config`` (name, mount path) mounted; in
    kube-system, of the priority its pods have in any cluster."""
    priority = {"priorityClassName": "system-cluster-critical"} if namespace == "kube-system" else {}
    volume, path = config
    container = {**container, "securityContext": CONTAINER_SECURITY,
                 "volumeMounts": [{"name": "config", "mountPath": path, "readOnly": True}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"serviceAccountName": name, **priority,
                                           "securityContext": LOW_PORTS, "containers": [container],
                                           "volumes": [{"name": "config", "configMap": {"name": volume}}]}}}}


def coredns(image: str) -> list[Manifest]:
    labels = {"k8s-app": "kube-dns"}
    probe = {"periodSeconds": 5, "timeoutSeconds": 3}
    container = {
        "name": "coredns", "image": image, "imagePullPolicy": "Never", "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": COREDNS_PROBE_PORTS["ready"]}, **probe},
        "livenessProbe": {"httpGet": {"path": "/health", "port": COREDNS_PROBE_PORTS["health"]}, **probe},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}}}
    return [*_access("coredns", "kube-system", [
                {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                 "verbs": ["list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": "kube-system"},
             "data": {"Corefile": COREFILE}},
            _deployment("coredns", "kube-system", labels, container, ("coredns", "/etc/coredns")),
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "kube-dns", "namespace": "kube-system",
                          "labels": {**labels, "kubernetes.io/name": "CoreDNS"}},
             "spec": {"selector": labels, "clusterIP": DNS_SERVICE_IP,
                      "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}]


def traefik(image: str) -> list[Manifest]:
    labels = {"app.kubernetes.io/name": "traefik"}
    ping = {"httpGet": {"path": "/ping", "port": TRAEFIK_PING_PORT}, "periodSeconds": 5, "timeoutSeconds": 3}
    container = {
        "name": "traefik", "image": image, "imagePullPolicy": "Never",
        "args": ["--configFile=/etc/traefik/traefik.yaml"],
        # The node's address, port 80, is the pod's (CNI's portmap plugin).
        "ports": [{"name": "web", "containerPort": 80, "hostPort": 80, "hostIP": NODE_IP, "protocol": "TCP"},
                  {"name": "ping", "containerPort": TRAEFIK_PING_PORT, "protocol": "TCP"}],
        "readinessProbe": ping, "livenessProbe": ping,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}}
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": INGRESS_NAMESPACE}},
            *_access("traefik", INGRESS_NAMESPACE, [
                {"apiGroups": [""], "resources": ["services", "endpoints", "secrets", "nodes"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["update"]}]),
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "traefik", "namespace": INGRESS_NAMESPACE},
             "data": {"traefik.yaml": json.dumps(TRAEFIK_CONFIG, indent=2) + "\n"}},
            _deployment("traefik", INGRESS_NAMESPACE, labels, container, ("traefik", "/etc/traefik")),
            # The class whose Ingresses it serves (Traefik's own default name and controller).
            {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": INGRESS_CLASS},
             "spec": {"controller": "traefik.io/ingress-controller"}}]


METRICS_SERVER_PORT = 10250  # upstream's: the pod's own port, not the node's kubelet


def metrics_server(image: str) -> list[Manifest]:
    """As upstream's components.yaml (v0.8.0), but: the kubelet's serving certificate is its own
    self-signed one here (no certificate bootstrap), so metrics-server does not verify it
    (--kubelet-insecure-tls), nor the API server metrics-server's (insecureSkipTLSVerify)."""
    labels = {"k8s-app": "metrics-server"}
    def probe(path: str) -> Manifest:
        return {"httpGet": {"scheme": "HTTPS", "port": METRICS_SERVER_PORT, "path": path}, "periodSeconds": 10,
                "timeoutSeconds": 3, "failureThreshold": 3}

    container = {
        "name": "metrics-server", "image": image, "imagePullPolicy": "Never",
        "args": ["--cert-dir=/tmp", f"--secure-port={METRICS_SERVER_PORT}",
                 "--kubelet-preferred-address-types=InternalIP", "--kubelet-use-node-status-port",
                 "--metric-resolution=15s", "--kubelet-insecure-tls"],
        "ports": [{"name": "https", "containerPort": METRICS_SERVER_PORT, "protocol": "TCP"}],
        "readinessProbe": probe("/readyz"), "livenessProbe": probe("/livez"),
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}}
    deployment = _deployment("metrics-server", "kube-system", labels, container, ("metrics-server", "/etc/unused"))
    pod = deployment["spec"]["template"]["spec"]
    pod["containers"][0]["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    pod["volumes"] = [{"name": "tmp", "emptyDir": {}}]
    return [*_access("metrics-server", "kube-system", [
                {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]),
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
             "metadata": {"name": "metrics-server:system:auth-delegator"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": "system:auth-delegator"},
             "subjects": [{"kind": "ServiceAccount", "name": "metrics-server", "namespace": "kube-system"}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": "metrics-server-auth-reader", "namespace": "kube-system"},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                         "name": "extension-apiserver-authentication-reader"},
             "subjects": [{"kind": "ServiceAccount", "name": "metrics-server", "namespace": "kube-system"}]},
            deployment,
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "metrics-server", "namespace": "kube-system", "labels": labels},
             "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": "https"}]}},
            {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
             "metadata": {"name": "v1beta1.metrics.k8s.io", "labels": labels},
             "spec": {"service": {"name": "metrics-server", "namespace": "kube-system"},
                      "group": "metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": True,
                      "groupPriorityMinimum": 100, "versionPriority": 100}}]


KUBE_ROUTER_HEALTH_PORT = 20244  # upstream's, on the node's addresses (the pod is on the node's network)


def kube_router(image: str) -> list[Manifest]:
    """As upstream's kube-router-firewall-daemonset.yaml (v2.1.0): only the NetworkPolicy
    controller (--run-firewall; the routes and the Services stay the bridge plugin's and
    kube-proxy's), on the node's network, its iptables rules beside kube-proxy's (the same
    backend: cluster/images/build.sh) and the same lock file, which, /run being the cluster's own
    tmpfs, is the cluster's. Security advisories are reported against v2.1.0, the only release
    the Go module proxy serves: acceptable only in this cluster's private network namespace.
    Upstream runs it privileged; it needs only to change the network's tables (NET_ADMIN, and
    NET_RAW for iptables' raw sockets), as root."""
    labels = {"k8s-app": "kube-router"}
    health = {"httpGet": {"path": "/healthz", "port": KUBE_ROUTER_HEALTH_PORT}, "periodSeconds": 5,
              "timeoutSeconds": 3}
    container = {
        "name": "kube-router", "image": image, "imagePullPolicy": "Never",
        "args": ["--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
                 f"--service-cluster-ip-range={SERVICE_CIDR}", f"--health-port={KUBE_ROUTER_HEALTH_PORT}"],
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}},
        "readinessProbe": health, "livenessProbe": {**health, "initialDelaySeconds": 10},
        "volumeMounts": [{"name": "xtables-lock", "mountPath": "/run/xtables.lock"}],
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}}
    return [*_access("kube-router", "kube-system", [
                {"apiGroups": [""], "resources": ["namespaces", "pods", "services", "nodes", "endpoints"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"],
                 "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                 "verbs": ["get", "list", "watch"]}]),
            {"apiVersion": "apps/v1", "kind": "DaemonSet",
             "metadata": {"name": "kube-router", "namespace": "kube-system", "labels": labels},
             "spec": {"selector": {"matchLabels": labels},
                      "template": {"metadata": {"labels": labels},
                                   "spec": {"serviceAccountName": "kube-router",
                                            "priorityClassName": "system-node-critical",
                                            "hostNetwork": True, "containers": [container],
                                            "tolerations": [{"operator": "Exists"}],
                                            "volumes": [{"name": "xtables-lock", "hostPath": {
                                                "path": "/run/xtables.lock", "type": "FileOrCreate"}}]}}}}]


def system_pods(images: dict[str, str]) -> list[Manifest]:
    """CoreDNS's, Traefik's, metrics-server's and kube-router's objects, with the images built here."""
    return (coredns(images["coredns"]) + traefik(images["traefik"]) + metrics_server(images["metrics-server"])
            + kube_router(images["kube-router"]))
