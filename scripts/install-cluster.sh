#!/usr/bin/env bash
# The one-node cluster's binaries (Kubernetes control plane, etcd, CRDs) that tests/cluster runs:
# cluster/build.sh builds them from the Go module proxy into the per-user cache once (many
# minutes on a new machine), then only links them. scripts/install.sh test runs it.
set -euo pipefail
exec "$(dirname "$0")/../cluster/build.sh"
