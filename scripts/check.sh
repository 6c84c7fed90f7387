#!/usr/bin/env bash
# The project's test command: lint, type-check, generated files in sync, then every test suite.
# Docker-backed suites need the engine from scripts/setup.sh; in CI (CI=true) they never skip.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

"$PY" -m ruff check .
"$PY" -m ruff format --check .
"$PY" -m mypy
"$PY" build.py generate --check
exec "$PY" -m pytest "$@"
