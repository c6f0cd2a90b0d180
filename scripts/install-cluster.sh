#!/usr/bin/env bash
# The one-node cluster that tests/cluster runs: the Debian packages of its node (containerd,
# runc, the CNI plugins, iptables, ipset, conntrack) and of its image builds (mmdebstrap, buildah,
# catatonit), installed when missing; then cluster/build.sh builds the Kubernetes binaries,
# etcd, CoreDNS and the images into the per-user cache once (many minutes on a new machine) and
# afterwards only links them. scripts/install.sh test runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for pair in containerd:containerd ctr:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins \
            iptables:iptables ipset:ipset conntrack:conntrack mmdebstrap:mmdebstrap buildah:buildah catatonit:catatonit \
            mvn:maven; do
  tool=${pair%%:*} package=${pair#*:}
  if [ "${tool#/}" != "$tool" ]; then [ -x "$tool" ] && continue; else command -v "$tool" >/dev/null 2>&1 && continue; fi
  [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  printf '\033[1m==> %s\033[0m\n' "Installing Debian packages for the cluster: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  # The cluster starts its own containerd; Debian's service would start one for the machine.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  $SUDO service containerd stop >/dev/null 2>&1 || true
fi
exec cluster/build.sh
