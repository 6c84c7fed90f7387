"""Defaults and choices the command line offers and the library uses: constants only.

Each is defined here once and imported by both sides, so that registering the options
(`build.py --help`) imports no library module (issue 17). Standard library only; no logic.
"""

from __future__ import annotations

from pathlib import Path

MAX_ID = 2**31 - 1  # the largest uid/gid every tool in the chain (Docker, useradd) accepts
DEFAULT_SHM = "8g"  # /dev/shm for PyTorch DataLoader workers: `up` and `run` alike
TORCH_SOURCES = ("auto", "index", "pypi", "local")  # build --torch-source
PYTEST_TIMEOUT = 3600.0  # seconds for one variant's suites (`test --timeout`)
RESULTS_DIR = Path(".bakery/test-results")  # test --results
LOADER_NAME = "load.sh"  # the loader script a bundle carries beside its archive
COMPOSE_COMMAND = ("python", "-m", "stylelora", "smoke")  # `docker compose up` proves the setup
BAKE_FILE = "docker-bake.json"  # generate writes it beside images/
WORKSPACE_MOUNT = "/workspace"  # where `run` and `compose` mount --workspace
ZSTD_LEVEL = 3  # save --level: the bundles' zstd compression level
