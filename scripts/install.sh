#!/usr/bin/env bash
# Installs what the local stack and the tests need, and only what is missing.
# Idempotent: a second run checks stamps and returns in about a second.
#
#   scripts/install.sh            services: Python venv, redis-server, nginx, Kafka broker jars
#   scripts/install.sh test       also what the tests use: chromium, prometheus, helm & co.
#
# Everything downloaded lands in .cache/ and .venv/ (both ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CACHE=$ROOT/.cache
VENV=$ROOT/.venv
PYTHON=${PYTHON:-python3}
want=${1:-services}
mkdir -p "$CACHE"

step() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# --- Debian packages -------------------------------------------------------
apt_missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "$2" ] || apt_missing+=("$3"); }
need_cmd redis-server /usr/bin/redis-server redis-server
need_cmd nginx /usr/sbin/nginx nginx-light
need_cmd java /usr/bin/java openjdk-17-jre-headless
need_cmd mvn /usr/bin/mvn maven
if [ "$want" = test ]; then
  need_cmd chromium /usr/bin/chromium chromium
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
reqs=(requirements/services.txt requirements/local.txt)
[ "$want" = test ] && reqs+=(requirements/test.txt)
stamp="$VENV/.installed-$(cat "${reqs[@]}" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  step "Python packages into .venv (${reqs[*]})"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --disable-pip-version-check -q --progress-bar on $(printf -- '-r %s ' "${reqs[@]}")
  rm -f "$VENV"/.installed-*; touch "$stamp"
fi

# --- Apache Kafka broker from Maven Central --------------------------------
KAFKA_HOME=$CACHE/kafka
pom_hash=$(sha256sum scripts/kafka/pom.xml | cut -c1-16)
if [ ! -f "$KAFKA_HOME/.installed-$pom_hash" ]; then
  step "Apache Kafka broker jars (Maven Central) into .cache/kafka"
  rm -rf "$KAFKA_HOME"; mkdir -p "$KAFKA_HOME"
  mvn -B -q -f scripts/kafka/pom.xml -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DoutputDirectory="$KAFKA_HOME/libs"
  touch "$KAFKA_HOME/.installed-$pom_hash"
fi

if [ "$want" = test ]; then
  for tool in scripts/install-*.sh; do [ -x "$tool" ] && "$tool"; done
fi
exit 0
