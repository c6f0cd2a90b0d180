"""The clusters the tests in this folder run against (cluster/cluster.py), each in a network
namespace of its own and a temporary directory, torn down at the end of its module: the control
plane alone (etcd, the API server, controller manager and scheduler) for test_control_plane, and
the same with a node (containerd, kubelet, kube-proxy, CoreDNS, the project's images) for
test_node. The first run builds Kubernetes, etcd, CoreDNS and the images (cluster/build.sh;
cached per user afterwards), hence the long timeouts of the tests."""

import pytest

from cluster.cluster import Cluster, build


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    build()
    running = Cluster(tmp_path_factory.mktemp("cluster"), die_with_me=True, node=False).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory):
    build()
    running = Cluster(tmp_path_factory.mktemp("node"), die_with_me=True, node=True).start()
    yield running
    running.stop()
