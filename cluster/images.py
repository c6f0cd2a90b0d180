"""The images cluster/images/build.sh built: their references, the Helm values that point the
charts at them, and their import into the node's containerd (no registry is ever asked)."""

import json
from pathlib import Path


def images(bin_dir: Path) -> dict[str, str]:
    """The images cluster/images/build.sh built: {name: reference}, e.g. "kafka":
    "localhost/chatroom-cluster/kafka:4.1.1-<hash>"."""
    return {path.name: (path / "ref").read_text().strip()
            for path in sorted((bin_dir / "images").iterdir()) if (path / "ref").exists()}


def image_archives(bin_dir: Path) -> list[Path]:
    """Each image's archive (what `ctr images import` reads)."""
    return [bin_dir / "images" / name / "image.tar" for name in images(bin_dir)]


def helm_values(bin_dir: Path, ingress_class: str, ingress_namespace: str) -> dict[str, list[str]]:
    """The --set arguments, per release, that point each chart at these images (and the
    chatroom chart's Ingress at the cluster's ingress controller, ``ingress_class``, whose pods
    in ``ingress_namespace`` its NetworkPolicies admit)."""
    built = images(bin_dir)

    def repository_and_tag(name: str) -> list[str]:
        repository, _, tag = built[name].rpartition(":")
        return [f"image.repository={repository}", f"image.tag={tag}"]

    registry, _, tag = built["chatroom-ingest"].rpartition(":")
    return {"redis": ["--set-string", ",".join(repository_and_tag("redis"))],
            # The cluster's Kafka image has the metrics agent (cluster/images/build.sh).
            "kafka": ["--set-string", ",".join(repository_and_tag("kafka")), "--set", "metrics.enabled=true"],
            "chatroom": ["--set-string", f"image.registry={registry.rpartition('/')[0]},image.tag={tag},"
                                         f"ingress.className={ingress_class}",
                         "--set-json", "networkPolicy.ingressController=" + json.dumps([{"namespaceSelector": {
                             "matchLabels": {"kubernetes.io/metadata.name": ingress_namespace}}}])]}
