"""bakery entry point: `python build.py --help`.

When bakery's dependencies are not importable (a fresh shell, system python3) and the project's
environment `.venv` exists (scripts/setup.sh makes it), re-execute this script in it.
"""

import os
import sys
from pathlib import Path

VENV_PYTHON = Path(__file__).resolve().parent / ".venv" / "bin" / "python"
REEXEC_MARK = "BAKERY_REEXECUTED"


def _in_project_venv() -> None:
    """Replace this process by .venv's python when bakery cannot be imported here."""
    try:
        import bakery.cli  # noqa: F401, PLC0415 - the probe itself
    except ImportError as exc:
        if VENV_PYTHON.is_file() and REEXEC_MARK not in os.environ:
            os.environ[REEXEC_MARK] = "1"
            os.execv(VENV_PYTHON, [str(VENV_PYTHON), *sys.argv])  # noqa: S606 - argv list, no shell
        sys.stderr.write(
            f"error: bakery's dependencies are not importable by {sys.executable} ({exc}) — "
            "run scripts/setup.sh, which installs them into .venv\n"
        )
        sys.exit(2)


if __name__ == "__main__":
    _in_project_venv()
    from bakery.cli import main

    sys.exit(main(sys.argv[1:]))
