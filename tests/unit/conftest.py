"""stylelora's tests (tests/unit/training) need torch, which the set-up never downloads (issue 14).

This lives one folder up so that mypy, which checks every test folder in one run, sees one
`conftest` per folder base (pyproject [tool.mypy] mypy_path): tests/unit/training is a base.

With a host torch (installed before the set-up; `.venv` then sees it) they run here. Without one
they are not collected here: tests/docker/test_stylelora_in_image.py runs this folder inside the
built cpu image, which has torch and the training stack (without that image it skips, or fails
under CI=true).
"""

import importlib.util

HOST_TORCH = importlib.util.find_spec("torch") is not None

collect_ignore_glob = [] if HOST_TORCH else ["training/test_*.py"]
