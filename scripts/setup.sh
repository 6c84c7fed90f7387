#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for bakery: Docker engine + buildx (scripts/install-engine.sh)
# and bakery's Python dependencies. Idempotent. Run as root (apt-get and dockerd need it).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

bash scripts/install-engine.sh

# torch for the host-side training tests: the CPU build. On machines whose pip can reach the
# PyTorch CPU index, that is where it comes from; a local wheel (pip's find-links) works too.
if ! "$PY" -c 'import torch' 2>/dev/null; then
  "$PY" -m pip install --quiet torch==2.13.0 --extra-index-url https://download.pytorch.org/whl/cpu
fi
"$PY" -m pip install --quiet -e '.[test,train,bench]'
echo "setup: done — python build.py --help" >&2
