#!/usr/bin/env bash
# The Kubernetes tools the chart checks use (tests/charts), built from pinned Go modules into
# the per-user cache (scripts/cache.sh), one folder per tool and version, and linked from the
# clone's .cache/go/bin. Idempotent: a tool already built at its pinned version is only linked.
#
#   scripts/install-k8s-tools.sh     (scripts/install.sh test runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/cache.sh

# module@version of each tool; the binary is the last path element of the module path.
TOOLS=(
  helm.sh/helm/v3/cmd/helm@v3.22.0
  github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0
  github.com/zegl/kube-score/cmd/kube-score@v1.20.0
)

use_go install-k8s-tools

for spec in "${TOOLS[@]}"; do
  module=${spec%@*}; version=${spec##*@}; name=${module##*/}
  dir=$CHATROOM_CACHE/tools/$name-$version
  if [ ! -x "$dir/$name" ]; then
    printf '\033[1m==> %s\033[0m\n' "go install $spec (into $dir)"
    GOBIN=$dir go install "$spec"
  fi
  cache_link "$dir/$name" "go/bin/$name"
done
exit 0
