"""The cluster the tests in this folder run against: the control plane of cluster/cluster.py
(etcd, the API server, controller manager and scheduler; no node) in a network namespace of
its own, started once per session in a temporary directory and torn down at the end. The
first run builds Kubernetes from the Go module proxy (cluster/build.sh; cached per user
afterwards), hence the long timeout of the tests."""

import pytest

from cluster import Cluster, build


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    build()
    running = Cluster(tmp_path_factory.mktemp("cluster"), die_with_me=True).start()
    yield running
    running.stop()
