#!/usr/bin/env bash
# The Kubernetes tools the chart checks use (tests/charts), built from pinned Go modules
# into .cache/go/bin. Idempotent: a tool already at its pinned version is left alone.
#
#   scripts/install-k8s-tools.sh     (scripts/install.sh test runs it)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

# module@version of each tool; the binary is the last path element of the module path.
TOOLS=(
  helm.sh/helm/v3/cmd/helm@v3.22.0
  github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0
  github.com/zegl/kube-score/cmd/kube-score@v1.20.0
)

export GOPATH=$ROOT/.cache/go
export GOMODCACHE=$GOPATH/pkg/mod
export GOCACHE=$ROOT/.cache/go-build
export GOBIN=$GOPATH/bin
export GOFLAGS=-modcacherw
export CGO_ENABLED=0
mkdir -p "$GOBIN"

if ! command -v go >/dev/null 2>&1; then
  echo "install-k8s-tools: the Go toolchain is missing (apt-get install golang-go)" >&2
  exit 1
fi

for spec in "${TOOLS[@]}"; do
  name=${spec%@*}; name=${name##*/}
  stamp="$GOBIN/.$name-$(printf '%s' "$spec" | sha256sum | cut -c1-16)"
  [ -x "$GOBIN/$name" ] && [ -f "$stamp" ] && continue
  printf '\033[1m==> %s\033[0m\n' "go install $spec (into .cache/go/bin)"
  go install "$spec"
  rm -f "$GOBIN/.$name"-*; touch "$stamp"
done
exit 0
