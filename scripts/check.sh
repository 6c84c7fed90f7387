#!/usr/bin/env bash
# The project's test command: lint, type-check, generated files in sync, build the images the
# image suites run against, then every test suite (pytest arguments pass through).
#
# BAKERY_CHECK_VARIANTS  comma-separated variants to build first (default: the cpu pair; CI adds
#                        the CUDA 12.8 image). Empty: build nothing, test what is already built.
# Docker-backed suites need the engine from scripts/setup.sh; in CI (CI=true) they never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
# The project's environment from scripts/setup.sh, else the python3 on PATH.
PY="${PYTHON:-python3}"
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
  PATH="$PWD/.venv/bin:$PATH"  # the tools the tests call (hadolint, actionlint) live there too
  export PATH
fi
VARIANTS="${BAKERY_CHECK_VARIANTS-2.13.0-cpu-py3.11,2.13.0-cpu-py3.11-slim}"

"$PY" -m ruff check .
"$PY" -m ruff format --check .
if "$PY" -c 'import torch' 2>/dev/null; then
  "$PY" -m mypy
else
  # The set-up never downloads torch; without it stylelora's types cannot be checked here (its
  # tests then run inside the cpu image: tests/docker/test_stylelora_in_image.py).
  echo "check: no torch in $PY: mypy checks bakery, tests and bench; stylelora where torch is installed" >&2
  "$PY" -m mypy bakery build.py tests bench --exclude '^tests/unit/training/'
fi
"$PY" build.py generate --check

if [ -n "$VARIANTS" ]; then
  "$PY" build.py base
  "$PY" build.py --variant "$VARIANTS" --bootstrap-base
fi
exec "$PY" -m pytest "$@"
