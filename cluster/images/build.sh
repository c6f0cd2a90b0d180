#!/usr/bin/env bash
# The images the one-node cluster runs (cluster/cluster.py), built without a registry or a
# container engine, each kept in the per-user cache as a docker-archive tar that containerd
# imports (never pulls):
#
#   chatroom-ingest, -bridge, -stream   the project's Dockerfiles (buildah bud --pull=never), on a
#                                       Python 3.11 base made from Debian's packages
#   chatroom-web                        web/Dockerfile, on Debian's nginx
#   kafka                               Kafka's jars from Maven Central on Debian's JRE, started
#                                       as the apache/kafka image starts (images/kafka/run), with
#                                       the Prometheus JMX exporter's agent for its metrics
#   redis                               Debian's redis-server
#   pause                               Debian's catatonit, the pods' sandbox
#   coredns, traefik, metrics-server    the static binaries cluster/build.sh built, alone in an
#                                       image (the cluster's DNS, ingress controller and
#                                       resource metrics pods)
#   kube-router                         its static binary on Debian's iptables and ipset (the
#                                       cluster's NetworkPolicy enforcer), iptables' backend
#                                       the one this machine's iptables (kube-proxy's) uses
#
# Base images: mmdebstrap makes a Debian root filesystem tar from the Debian mirror, buildah
# turns it into an image. The Dockerfiles take their base image as a build argument whose
# default stays the official image. Every image is named
# localhost/chatroom-cluster/<name>:<tag>, its tag a hash of its inputs (this script, its files,
# its base's tag): an entry is built once per machine and user, and the references change when
# an input does. .cache/cluster/images/<name>/ links the entry: image.tar and ref (the
# reference). buildah's storage is a temporary directory, removed at the end.
#
#   cluster/images/build.sh          builds what is missing (root is needed)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
# buildah mounts what its RUN steps see: in a mount namespace of this script's own, so that
# nothing stays mounted on the machine whatever happens.
if [ -z "${CHATROOM_IMAGES_NS:-}" ]; then
  exec env CHATROOM_IMAGES_NS=1 unshare --mount --propagation private "$ROOT/cluster/images/build.sh" "$@"
fi
source scripts/cache.sh

REGISTRY=localhost/chatroom-cluster  # nothing answers to this name: nothing can be pulled
SUITE=bookworm
MIRRORS=(
  "deb http://deb.debian.org/debian $SUITE main"
  "deb http://deb.debian.org/debian $SUITE-updates main"
  "deb http://deb.debian.org/debian-security $SUITE-security main"
)
SELF=cluster/images/build.sh

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/chatroom-images.XXXXXX")
trap 'rm -rf --one-file-system "$work"' EXIT
bah() {
  nice -n 10 buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"
}

# key INPUT...: a hash of the inputs (files, folders, or words) and of RECIPE, the version of
# how this script makes the images (raise it when changing that)
RECIPE=1
key() {
  {
    printf '%s\n' "$RECIPE $SUITE" "${MIRRORS[@]}"
    for input in "$@"; do
      if [ -d "$input" ]; then
        find "$input" -type f ! -name '*.pyc' ! -path '*/__pycache__/*' | LC_ALL=C sort | xargs sha256sum
      elif [ -f "$input" ]; then
        printf '%s\n' "$input"; cat "$input"
      else
        printf '%s\n' "$input"
      fi
    done
  } | sha256sum | cut -c1-12
}

# have NAME TAG: whether the entry exists (then linked); sets $entry
have() {
  entry=$CHATROOM_CACHE/cluster-image-$1-$2
  if [ -f "$entry/image.tar" ]; then
    cache_link "$entry" "cluster/images/$1"
    return 0
  fi
  return 1
}

# save NAME REF: writes the image REF into NAME's entry ($entry) and links it
save() {
  rm -rf "$entry.tmp"; mkdir -p "$entry.tmp"
  bah push --quiet "$2" "docker-archive:$entry.tmp/image.tar:$2"
  printf '%s\n' "$2" > "$entry.tmp/ref"
  rm -rf "$entry"; mv "$entry.tmp" "$entry"
  cache_link "$entry" "cluster/images/$1"
}

# load REF: puts an image this script saved into buildah's storage (a base for the next ones)
load() {
  local name=${1#"$REGISTRY"/}; name=${name%%:*}
  bah images --quiet "$1" >/dev/null 2>&1 && return
  bah tag "$(bah pull --quiet "docker-archive:$ROOT/.cache/cluster/images/$name/image.tar")" "$1"
}

# debian NAME TAG PACKAGES [buildah config options...]: an image of a Debian root filesystem
# (minbase and PACKAGES, without documentation), committed as $REGISTRY/NAME:TAG; $customize, if
# set, is an mmdebstrap --customize-hook (run on the root filesystem, "$1", before it is packed)
debian() {
  local name=$1 tag=$2 packages=$3; shift 3
  local ref=$REGISTRY/$name:$tag
  step "$ref: mmdebstrap ($SUITE: $packages)"
  # (man1 stays: Java's packages link their manual pages there as they install)
  nice -n 10 mmdebstrap --quiet --variant=minbase --include="$packages" --skip=output/dev \
    --essential-hook='mkdir -p "$1/usr/share/man/man1"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    ${customize:+--customize-hook="$customize"} "$SUITE" "$work/$name.tar" "${MIRRORS[@]}"
  local c; c=$(bah from --quiet scratch)
  bah add --quiet "$c" "$work/$name.tar" / >/dev/null
  rm -f "$work/$name.tar"
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@" "$c"
  bah commit --quiet --rm "$c" "$ref" >/dev/null
}

# dockerfile REF DOCKERFILE [build args...]: the project's Dockerfile built as it is, from the
# repository root, with base images only from buildah's storage
# The RUN steps see this machine's certificate authorities in place of the base's (Debian's pip
# trusts /etc/ssl/certs), so that pip reaches PyPI as the machine's own does, even through a
# proxy with a certificate authority of its own; the image keeps its own file.
dockerfile() {
  local ref=$1 file=$2; shift 2
  local cas=/etc/ssl/certs/ca-certificates.crt
  step "$ref: buildah bud -f $file"
  bah bud --quiet --pull=never --isolation=chroot --layers --volume "$cas:$cas:ro" -f "$file" "$@" \
    -t "$ref" . >/dev/null
}

# --- bases -----------------------------------------------------------------------------------
python_packages=python3,python3-venv,python-is-python3,passwd,ca-certificates
python_tag=3.11-$(key "$python_packages")
if ! have python "$python_tag"; then
  debian python "$python_tag" "$python_packages"
  save python "$REGISTRY/python:$python_tag"
fi
python_ref=$REGISTRY/python:$python_tag

nginx_tag=bookworm-$(key nginx-light)
if ! have nginx "$nginx_tag"; then
  debian nginx "$nginx_tag" nginx-light
  save nginx "$REGISTRY/nginx:$nginx_tag"
fi
nginx_ref=$REGISTRY/nginx:$nginx_tag

# --- the project's images: one tag for the four (the chart's image.tag) ----------------------
app_tag=$(key "$python_tag" "$nginx_tag" .dockerignore requirements/services.txt services/common \
  services/ingest services/bridge services/stream web)
for name in ingest bridge stream web; do
  have "chatroom-$name" "$app_tag" && continue
  if [ "$name" = web ]; then
    load "$nginx_ref"
    dockerfile "$REGISTRY/chatroom-web:$app_tag" web/Dockerfile --build-arg "NGINX_IMAGE=$nginx_ref"
  else
    load "$python_ref"
    dockerfile "$REGISTRY/chatroom-$name:$app_tag" "services/$name/Dockerfile" \
      --build-arg "PYTHON_IMAGE=$python_ref"
  fi
  save "chatroom-$name" "$REGISTRY/chatroom-$name:$app_tag"
done

# --- Kafka: the jars on Debian's JRE ---------------------------------------------------------
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' cluster/images/kafka/pom.xml)
# The metrics agent: the version the local stack runs (scripts/kafka/metrics-agent.pom.xml), at
# the kafka chart's metrics.agentJar.
agent_pom=scripts/kafka/metrics-agent.pom.xml
agent_jar=/opt/jmx-exporter/jmx_prometheus_javaagent.jar
kafka_tag=$kafka_version-$(key cluster/images/kafka openjdk-17-jre-headless "$agent_pom" "$agent_jar")
if ! have kafka "$kafka_tag"; then
  ref=$REGISTRY/kafka:$kafka_tag
  debian kafka "$kafka_tag" openjdk-17-jre-headless \
    --user 10001:10001 --workingdir /opt/kafka --cmd '["/etc/kafka/docker/run"]'
  step "$ref: Kafka $kafka_version's jars (Maven Central, cached in $CHATROOM_CACHE/m2)"
  mkdir -p "$work/kafka/libs"
  mvn -B -q -f cluster/images/kafka/pom.xml -Dmaven.repo.local="$CHATROOM_CACHE/m2" \
    dependency:copy-dependencies -DoutputDirectory="$work/kafka/libs"
  step "$ref: the Prometheus JMX exporter's agent (Maven Central, $agent_pom)"
  mvn -B -q -f "$agent_pom" -Dmaven.repo.local="$CHATROOM_CACHE/m2" dependency:copy-dependencies \
    -DexcludeTransitive=true -Dmdep.stripVersion=true -DoutputDirectory="$work/kafka/agent"
  c=$(bah from --quiet --pull=never "$ref")
  bah copy --quiet "$c" "$work/kafka/libs" /opt/kafka/libs
  bah copy --quiet "$c" "$work/kafka/agent/$(basename "$agent_jar")" "$agent_jar"
  for script in kafka-run-class.sh kafka-topics.sh kafka-configs.sh kafka-storage.sh; do
    bah copy --quiet "$c" "cluster/images/kafka/$script" /opt/kafka/bin/
  done
  bah copy --quiet "$c" cluster/images/kafka/run /etc/kafka/docker/run
  bah copy --quiet "$c" cluster/images/kafka/log4j2.properties /opt/kafka/config/
  bah copy --quiet "$c" cluster/images/kafka/tools-log4j2.properties /etc/kafka/
  bah commit --quiet --rm "$c" "$ref" >/dev/null
  save kafka "$ref"
fi

# --- Redis: Debian's server ------------------------------------------------------------------
redis_tag=bookworm-$(key redis-server)
if ! have redis "$redis_tag"; then
  debian redis "$redis_tag" redis-server --user 10001:10001 --cmd '["redis-server"]'
  save redis "$REGISTRY/redis:$redis_tag"
fi

# --- the pods' sandbox: Debian's static catatonit, pausing --------------------------------------
catatonit=$(command -v catatonit || true)
[ -x "$catatonit" ] || { echo "$SELF: catatonit is missing (scripts/install-cluster.sh installs it)" >&2; exit 1; }
pause_tag=catatonit-$(dpkg-query -W -f '${Version}' catatonit | tr -c 'A-Za-z0-9_.\n-' _)-$(key "$catatonit")
if ! have pause "$pause_tag"; then
  ref=$REGISTRY/pause:$pause_tag
  step "$ref: $catatonit -P"
  c=$(bah from --quiet scratch)
  bah copy --quiet "$c" "$catatonit" /catatonit
  bah config --entrypoint '["/catatonit", "-P"]' --user 65535:65535 "$c"
  bah commit --quiet --rm "$c" "$ref" >/dev/null
  save pause "$ref"
fi

# --- CoreDNS, Traefik, metrics-server: the binaries cluster/build.sh built (static), alone -----
# Tagged by their cache entry's name (the release and a hash of its module's files).
for name in coredns traefik metrics-server; do
  bin=$ROOT/.cache/cluster/$name
  [ -x "$bin" ] || { echo "$SELF: $bin is missing (cluster/build.sh $name builds it)" >&2; exit 1; }
  built=$(basename "$(dirname "$(readlink -f "$bin")")")
  tag=${built#"$name"-}-$(key "$name binary image")
  have "$name" "$tag" && continue
  ref=$REGISTRY/$name:$tag
  step "$ref: $built"
  c=$(bah from --quiet scratch)
  bah copy --quiet "$c" "$(readlink -f "$bin")" "/$name"
  bah config --entrypoint "[\"/$name\"]" --user 65532:65532 "$c"
  bah commit --quiet --rm "$c" "$ref" >/dev/null
  save "$name" "$ref"
done

# --- kube-router: its static binary on Debian's iptables and ipset ---------------------------
# Security advisories are reported against v2.1.0, the only release the Go module proxy serves:
# the image runs only in the test cluster's private network namespace. kube-router's rules must
# be in the same iptables backend as kube-proxy's (which runs this machine's iptables): the
# image's `iptables` is set to the backend this machine's uses (nf_tables or legacy).
bin=$ROOT/.cache/cluster/kube-router
[ -x "$bin" ] || { echo "$SELF: $bin is missing (cluster/build.sh kube-router builds it)" >&2; exit 1; }
built=$(basename "$(dirname "$(readlink -f "$bin")")")
case $(iptables --version) in
  *nf_tables*) backend=nft ;;
  *legacy*) backend=legacy ;;
  *) echo "$SELF: which backend $(command -v iptables) uses is unknown: $(iptables --version)" >&2; exit 1 ;;
esac
router_tag=${built#kube-router-}-$backend-$(key "kube-router image" iptables ipset "$backend")
if ! have kube-router "$router_tag"; then
  ref=$REGISTRY/kube-router:$router_tag
  customize="chroot \"\$1\" update-alternatives --quiet --set iptables /usr/sbin/iptables-$backend" \
    debian kube-router "$router_tag" iptables,ipset --entrypoint '["/usr/local/bin/kube-router"]'
  c=$(bah from --quiet --pull=never "$ref")
  bah copy --quiet "$c" "$(readlink -f "$bin")" /usr/local/bin/kube-router
  bah commit --quiet --rm "$c" "$ref" >/dev/null
  save kube-router "$ref"
fi
exit 0
