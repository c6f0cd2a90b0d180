#!/usr/bin/env bash
# The benchmark's compiled programs, built once into the per-user cache (scripts/cache.sh) and
# reused by every clone: prints the path of the binary it was asked for.
#
#   bench/tools.sh loadgen            bench/loadgen-go, keyed by a hash of its sources
#   bench/tools.sh centrifugo         the peer system, pinned (CENTRIFUGO_VERSION below)
#   bench/tools.sh centrifugo-ingest  bench/baselines/centrifugo/ingest-go (POST -> Kafka for it)
#   bench/tools.sh test-loadgen       runs bench/loadgen-go's own tests (go test)
#
# Builds run under `nice -n 10`; a first Centrifugo build takes a minute or two.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/cache.sh

CENTRIFUGO_MODULE=github.com/centrifugal/centrifugo/v6
CENTRIFUGO_VERSION=v6.9.1

use_go bench/tools.sh

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# build_module DIR NAME: a module of ours, keyed by a hash of its go.mod, go.sum and sources.
build_module() {
  local hash dir
  hash=$(cd "$1" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs cat | sha256sum | cut -c1-12)
  dir=$CHATROOM_CACHE/tools/$2-$hash
  if [ ! -x "$dir/$2" ]; then
    say "building $1 into $dir"
    mkdir -p "$dir"
    (cd "$1" && nice -n 10 go build -trimpath -o "$dir/$2.tmp" .) >&2
    mv "$dir/$2.tmp" "$dir/$2"
  fi
  echo "$dir/$2"
}

case "${1:-}" in
  loadgen) build_module bench/loadgen-go loadgen ;;
  test-loadgen) cd bench/loadgen-go && nice -n 10 go test -count=1 ./... ;;
  centrifugo-ingest) build_module bench/baselines/centrifugo/ingest-go centrifugo-ingest ;;
  centrifugo)
    dir=$CHATROOM_CACHE/tools/centrifugo-$CENTRIFUGO_VERSION
    if [ ! -x "$dir/centrifugo" ]; then
      say "go install $CENTRIFUGO_MODULE@$CENTRIFUGO_VERSION (into $dir)"
      GOBIN=$dir nice -n 10 go install "$CENTRIFUGO_MODULE@$CENTRIFUGO_VERSION" >&2
    fi
    echo "$dir/centrifugo"
    ;;
  *)
    echo "usage: bench/tools.sh loadgen|centrifugo|centrifugo-ingest|test-loadgen" >&2
    exit 2
    ;;
esac
