#!/usr/bin/env bash
# Installs what the local stack and the tests need, and only what is missing.
# Idempotent: a second run checks stamps and returns in about a second.
#
#   scripts/install.sh            services: Python venv, redis-server, nginx, Kafka broker jars
#   scripts/install.sh test       also what the tests use: chromium, prometheus, helm & co.
#
# What is fetched or built once per machine (the Kafka jars, the Go-built tools, pip's wheels)
# lives in a per-user cache, keyed by version, so that another clone on the same machine finds
# it: $CHATROOM_CACHE, by default ${XDG_CACHE_HOME:-~/.cache}/chatroom. The clone's .cache/
# holds only links into it; .venv/ is the clone's own. Both are ignored by git.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
PYTHON=${PYTHON:-python3}
want=${1:-services}
source scripts/cache.sh

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# --- Debian packages -------------------------------------------------------
apt_missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "$2" ] || apt_missing+=("$3"); }
need_cmd redis-server /usr/bin/redis-server redis-server
need_cmd nginx /usr/sbin/nginx nginx-light
# The gateway's whole-body deadline on /api/ (local/templates/body-deadline.lua).
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] || apt_missing+=(libnginx-mod-http-lua)
need_cmd java /usr/bin/java openjdk-17-jre-headless
need_cmd mvn /usr/bin/mvn maven
"$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_missing+=(python3-venv)
if [ "$want" = test ]; then
  need_cmd chromium /usr/bin/chromium chromium
  # Reactions are emoji: without a font for them the browser tests' screenshots show boxes.
  [ -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || apt_missing+=(fonts-noto-color-emoji)
  need_cmd promtool /usr/bin/promtool prometheus
fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  step "Installing Debian packages: ${apt_missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
  # Debian starts these as system services on install; the stack runs its own.
  for svc in redis-server nginx prometheus; do $SUDO service "$svc" stop >/dev/null 2>&1 || true; done
fi

# --- Python virtualenv -----------------------------------------------------
# One compiled, hashed requirements file per set (scripts/compile-requirements.sh): `test`
# includes `local`, which includes what the images install.
reqs=requirements/local.txt
[ "$want" = test ] && reqs=requirements/test.txt
# The project's own packages (the three services, their shared package, and the tooling at the
# root: local runner, cluster, bench, dashboards) are installed editable, so the code runs from
# the clone; setuptools comes with the venv (Python 3.11's ensurepip), so nothing else is fetched.
packages=(services/common services/ingest services/bridge services/stream .)
hash=$(cat requirements/*.txt pyproject.toml services/*/pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$VENV/.installed-$hash-$want" ] && [ ! -f "$VENV/.installed-$hash-test" ]; then
  step "Python packages into .venv ($reqs; wheels cached in $PIP_CACHE_DIR)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check --require-hashes -r "$reqs"
  "$VENV/bin/pip" install --disable-pip-version-check --quiet --no-deps --no-build-isolation \
    $(printf -- '-e %s ' "${packages[@]}")
  rm -f "$VENV"/.installed-*; touch "$VENV/.installed-$hash-$want"
fi

# --- Apache Kafka broker from Maven Central --------------------------------
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' scripts/kafka/pom.xml)
kafka_dir=$CHATROOM_CACHE/kafka-$kafka_version-$(sha256sum scripts/kafka/pom.xml | cut -c1-12)
if [ ! -f "$kafka_dir/.installed" ]; then
  step "Apache Kafka $kafka_version broker jars (Maven Central) into $kafka_dir"
  rm -rf "$kafka_dir"; mkdir -p "$kafka_dir"
  mvn -B -q -f scripts/kafka/pom.xml -Dmaven.repo.local="$CHATROOM_CACHE/m2" \
    dependency:copy-dependencies -DoutputDirectory="$kafka_dir/libs"
  touch "$kafka_dir/.installed"
fi
cache_link "$kafka_dir" kafka

# The broker's metrics for Prometheus: the JMX exporter's Java agent (helm/kafka/files/metrics.yaml).
agent_dir=$CHATROOM_CACHE/kafka-metrics-agent-$(sha256sum scripts/kafka/metrics-agent.pom.xml | cut -c1-12)
if [ ! -f "$agent_dir/.installed" ]; then
  step "Prometheus JMX exporter agent (Maven Central) into $agent_dir"
  rm -rf "$agent_dir"; mkdir -p "$agent_dir"
  mvn -B -q -f scripts/kafka/metrics-agent.pom.xml -Dmaven.repo.local="$CHATROOM_CACHE/m2" \
    dependency:copy-dependencies -DexcludeTransitive=true -Dmdep.stripVersion=true -DoutputDirectory="$agent_dir"
  touch "$agent_dir/.installed"
fi
cache_link "$agent_dir" kafka-metrics-agent

if [ "$want" = test ]; then
  for tool in scripts/install-*.sh; do [ -x "$tool" ] && "$tool"; done
fi
exit 0
