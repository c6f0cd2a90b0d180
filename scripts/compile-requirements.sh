#!/usr/bin/env bash
# Compiles each requirements/<set>.in into requirements/<set>.txt: every package pinned, with
# the hashes that `pip install --require-hashes` checks. Run it (make requirements) after
# changing a .in file; tests/unit/test_requirements.py fails while a .txt is out of date.
#
# The sets build on each other: services (what the images install) < local (make run) < test.
# Each compiles against the one below it as a constraint, so they pin the same versions.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
source scripts/cache.sh

UV_VERSION=0.13.8
uv_dir=$CHATROOM_CACHE/tools/uv-$UV_VERSION
if [ ! -x "$uv_dir/bin/uv" ]; then
  python3 -m venv "$uv_dir"
  "$uv_dir/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
fi
for set in services local test; do
  printf '\033[1m==> %s\033[0m\n' "requirements/$set.in -> requirements/$set.txt"
  "$uv_dir/bin/uv" pip compile --quiet --generate-hashes --no-header --annotation-style line \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    "requirements/$set.in" -o "requirements/$set.txt"
done
