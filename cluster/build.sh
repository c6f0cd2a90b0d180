#!/usr/bin/env bash
# Builds the one-node cluster's binaries from the Go module proxy into the per-user cache
# (scripts/cache.sh) and links them from the clone's .cache/cluster/. Idempotent: a binary already
# built for these go.mod/go.sum files is only linked.
#
#   cluster/build.sh                   everything: the control plane (kube-apiserver,
#                                      kube-controller-manager, kube-scheduler, kubectl, etcd,
#                                      crds) and the node (kubelet, kube-proxy, coredns, traefik,
#                                      metrics-server, kube-router, images)
#   cluster/build.sh kubelet ...       named binaries of cluster/kubernetes/go.mod's tools, etcd,
#                                      coredns, traefik, metrics-server, kube-router, crds (the custom resource definitions
#                                      listed below) or images (cluster/images/build.sh)
#
# Kubernetes: cluster/kubernetes is a module of ours requiring k8s.io/kubernetes (the release in
# its go.mod) with each k8s.io staging module replaced by its published release; the version is
# stamped in with the ldflags upstream's hack/lib/version.sh passes, so that /version reports the
# real release. etcd: cluster/etcd is upstream's etcdmain.Main. CoreDNS: cluster/coredns is
# upstream's coremain with the plugins the cluster uses. metrics-server: cluster/metrics-server is
# upstream's main. kube-router: cluster/kube-router is upstream's main, run as the NetworkPolicy
# enforcer alone; v2.1.0, the only release the Go module proxy serves, has security advisories
# reported against it: acceptable only inside the test cluster's private network namespace.
# Traefik: cluster/traefik (below). No cgo.
# Builds run at `nice 10`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/cache.sh

use_go cluster/build.sh

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# progress LABEL: reads `go build -v` (one line per package compiled) and prints a count now and
# then, so that a cold build (many minutes; about 2,200 packages for kube-apiserver) shows it moves.
progress() {
  local label=$1 n=0 start=$SECONDS
  while IFS= read -r line; do
    case $line in
      *:*|\#*) printf '%s\n' "$line" >&2; continue ;;   # a compiler message, not a package name
    esac
    n=$((n + 1))
    if [ $((n % 100)) -eq 0 ]; then
      printf '    %s: %d packages compiled (%ds)\n' "$label" "$n" $((SECONDS - start))
    fi
  done
  printf '    %s: %d packages compiled, linked (%ds)\n' "$label" "$n" $((SECONDS - start))
}

# build MODULE_DIR OUT_DIR LDFLAGS PACKAGE...: the named main packages, into OUT_DIR.
build() {
  local mod=$1 out=$2 ldflags=$3; shift 3
  mkdir -p "$out.tmp"
  (cd "$mod" && nice -n 10 go build -v -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp/" "$@" 2>&1) \
    | progress "$(basename "$out")"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "cluster/build.sh: go build failed" >&2; exit 1; }
}

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd crds
                                kubelet kube-proxy coredns traefik metrics-server kube-router images)

# --- Kubernetes -----------------------------------------------------------------------------
k8s_version=$(sed -n 's:^\tk8s.io/kubernetes \(v[^ ]*\).*:\1:p' cluster/kubernetes/go.mod)
k8s_dir=$CHATROOM_CACHE/kubernetes-$k8s_version-$(cat cluster/kubernetes/go.{mod,sum} | sha256sum | cut -c1-12)
k8s_missing=()
for name in "${want[@]}"; do
  case $name in etcd|coredns|traefik|metrics-server|kube-router|crds|images) continue ;; esac
  grep -qx "[[:space:]]*k8s.io/kubernetes/cmd/$name" cluster/kubernetes/go.mod \
    || { echo "cluster/build.sh: $name is not a tool of cluster/kubernetes/go.mod" >&2; exit 2; }
  [ -x "$k8s_dir/$name" ] || k8s_missing+=("$name")
done
if [ ${#k8s_missing[@]} -gt 0 ]; then
  step "Kubernetes $k8s_version: ${k8s_missing[*]} (go build into $k8s_dir; a first build takes long)"
  # What upstream's hack/lib/version.sh stamps. The module proxy knows the release's date, not
  # its commit: gitCommit is left empty.
  info=$(cd cluster/kubernetes && go mod download -json "k8s.io/kubernetes@$k8s_version" \
    | sed -n 's|.*"Info": "\(.*\)".*|\1|p')
  date=$(sed -n 's|.*"Time": *"\([^"]*\)".*|\1|p' "$info")
  major=${k8s_version#v}; major=${major%%.*}
  minor=${k8s_version#v*.}; minor=${minor%%.*}
  ldflags=""
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=${date:-1970-01-01T00:00:00Z}"
  done
  pkgs=(); for name in "${k8s_missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$name"); done
  rm -rf "$k8s_dir.tmp"
  build cluster/kubernetes "$k8s_dir" "$ldflags" "${pkgs[@]}"
  mkdir -p "$k8s_dir"
  for name in "${k8s_missing[@]}"; do mv "$k8s_dir.tmp/$name" "$k8s_dir/$name"; done
  rm -rf "$k8s_dir.tmp"
fi
for name in "${want[@]}"; do
  case $name in etcd|coredns|traefik|metrics-server|kube-router|crds|images) ;; *) cache_link "$k8s_dir/$name" "cluster/$name" ;; esac
done

# --- etcd, CoreDNS, metrics-server, kube-router: each a small module of ours (go.mod, go.sum, main.go) ---
# Built into the cache keyed by the version it requires of the module it wraps and a hash of
# its files; then linked.
small_module() {  # directory under cluster/ (= the program's name), what it is, the module it wraps[, ldflags]
  local name=$1 title=$2 module=$3 ldflags=${4:-} version dir
  version=$(sed -n "s:^\(require \|\t\)$module \(v[^ ]*\).*:\2:p" "cluster/$name/go.mod")
  dir=$CHATROOM_CACHE/$name-$version-$(cat "cluster/$name/go.mod" "cluster/$name/go.sum" "cluster/$name/main.go" | sha256sum | cut -c1-12)
  if [ ! -x "$dir/$name" ]; then
    step "$title $version (go build into $dir)"
    rm -rf "$dir.tmp"
    build "cluster/$name" "$dir" "${ldflags//@VERSION@/$version}" .
    mkdir -p "$dir"
    mv "$dir.tmp/$name" "$dir/$name"
    rm -rf "$dir.tmp"
  fi
  cache_link "$dir/$name" "cluster/$name"
}
if printf '%s\n' "${want[@]}" | grep -qx etcd; then
  small_module etcd etcd go.etcd.io/etcd/server/v3
fi
if printf '%s\n' "${want[@]}" | grep -qx coredns; then
  small_module coredns CoreDNS github.com/coredns/coredns
fi
if printf '%s\n' "${want[@]}" | grep -qx metrics-server; then
  small_module metrics-server metrics-server sigs.k8s.io/metrics-server
fi
if printf '%s\n' "${want[@]}" | grep -qx kube-router; then
  # Security advisories are reported against v2.1.0, the only release the Go module proxy
  # serves: it runs only inside the test cluster's private network namespace.
  small_module kube-router kube-router github.com/cloudnativelabs/kube-router/v2 \
    "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=@VERSION@"
fi

# --- Traefik, the ingress controller: a module of ours requiring the release -------------------
# cluster/traefik/go.mod carries Traefik's own replace and exclude directives. Two of the modules
# it links are not served by the Go module proxy, so the build runs in a copy of the module (in
# the cache) where two of its dependencies are folders copied from the module cache and patched
# with cluster/traefik/patch/<name>/: lego's list of DNS-01 providers (a dozen SDKs the proxy does
# not serve) becomes none, and the released go-http-auth gets the two functions Traefik's fork of
# it adds. Keyed by the release and a hash of every file of cluster/traefik.
if printf '%s\n' "${want[@]}" | grep -qx traefik; then
  tr_version=$(sed -n 's:^[[:space:]]*github.com/traefik/traefik/v3 \(v[^ ]*\).*:\1:p' cluster/traefik/go.mod)
  tr_dir=$CHATROOM_CACHE/traefik-$tr_version-$(cd cluster/traefik && find . -type f | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)
  if [ ! -x "$tr_dir/traefik" ]; then
    step "Traefik $tr_version (go build into $tr_dir; a first build takes long)"
    src=$tr_dir.src
    rm -rf "$src"; mkdir -p "$src"
    cp cluster/traefik/go.mod cluster/traefik/go.sum "$src/"
    cp -r cluster/traefik/ext "$src/ext"
    (cd "$src" && go mod download github.com/go-acme/lego/v5 github.com/abbot/go-http-auth)
    for spec in lego:github.com/go-acme/lego/v5 go-http-auth:github.com/abbot/go-http-auth; do
      name=${spec%%:*}; module=${spec#*:}
      cp -r "$(cd "$src" && go list -m -f '{{.Dir}}' "$module")" "$src/$name"
      chmod -R u+w "$src/$name"
      cp -r "cluster/traefik/patch/$name/." "$src/$name/"
      (cd "$src" && go mod edit -replace "$module=./$name")
    done
    rm -rf "$tr_dir.tmp"
    build "$src" "$tr_dir" "-X github.com/traefik/traefik/v3/pkg/version.Version=$tr_version" \
      github.com/traefik/traefik/v3/cmd/traefik
    mkdir -p "$tr_dir"
    mv "$tr_dir.tmp/traefik" "$tr_dir/traefik"
    rm -rf "$tr_dir.tmp" "$src"
  fi
  cache_link "$tr_dir/traefik" cluster/traefik
fi

# --- Custom resource definitions ------------------------------------------------------------
# The kinds the charts render beyond Kubernetes' own, from the Go modules that publish them:
# Gateway API's HTTPRoute, the Prometheus operator's ServiceMonitor, PodMonitor, PrometheusRule.
CRDS=(
  sigs.k8s.io/gateway-api@v1.5.0:config/crd/standard/gateway.networking.k8s.io_httproutes.yaml
  github.com/prometheus-operator/prometheus-operator@v0.93.1:example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml
  github.com/prometheus-operator/prometheus-operator@v0.93.1:example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml
  github.com/prometheus-operator/prometheus-operator@v0.93.1:example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml
)
if printf '%s\n' "${want[@]}" | grep -qx crds; then
  crd_dir=$CHATROOM_CACHE/cluster-crds-$(printf '%s\n' "${CRDS[@]}" | sha256sum | cut -c1-12)
  if [ ! -f "$crd_dir/.installed" ]; then
    step "Custom resource definitions (Go module proxy) into $crd_dir"
    rm -rf "$crd_dir"; mkdir -p "$crd_dir"
    for spec in "${CRDS[@]}"; do
      module=${spec%%:*}; file=${spec#*:}
      dir=$(cd "$CHATROOM_CACHE" && GOFLAGS=-modcacherw GO111MODULE=on go mod download -json "$module" \
        | sed -n 's|.*"Dir": "\(.*\)".*|\1|p')
      cp "$dir/$file" "$crd_dir/"
    done
    touch "$crd_dir/.installed"
  fi
  cache_link "$crd_dir" cluster/crds
fi

# --- Images (containerd imports them; nothing is pulled) -------------------------------------
if printf '%s\n' "${want[@]}" | grep -qx images; then
  cluster/images/build.sh
fi
exit 0
