"""bakery entry point: `python build.py --help`.

When bakery's dependencies are not importable (a fresh shell, system python3) and the project's
environment `.venv` exists (scripts/setup.sh makes it), re-execute this script in it.
"""

import importlib.util
import os
import sys
from pathlib import Path

VENV_PYTHON = Path(__file__).resolve().parent / ".venv" / "bin" / "python"
REEXEC_MARK = "BAKERY_REEXECUTED"
# The import names of pyproject.toml's dependencies (tests/unit/test_build_entry.py checks).
DEPENDENCIES = ("python_on_whales", "jinja2", "packaging", "rich", "yaml")


def _in_project_venv() -> None:
    """Replace this process by .venv's python when bakery cannot be imported here."""
    try:
        import bakery.cli  # noqa: F401, PLC0415 - the probe itself

        # bakery.cli imports its dependencies only in the commands that need them (so that
        # `--help`, `list` and `enter` start fast): found here, not imported.
        for name in DEPENDENCIES:
            if importlib.util.find_spec(name) is None:
                raise ImportError(f"No module named {name!r}")
    except ImportError as exc:
        if VENV_PYTHON.is_file() and REEXEC_MARK not in os.environ:
            os.environ[REEXEC_MARK] = "1"
            os.execv(VENV_PYTHON, [str(VENV_PYTHON), *sys.argv])  # noqa: S606 - argv list, no shell
        sys.stderr.write(
            f"error: bakery's dependencies are not importable by {sys.executable} ({exc}) — "
            "run scripts/setup.sh, which installs them into .venv\n"
        )
        sys.exit(2)
    # The mark only guards the one re-execution: the commands bakery runs (`python build.py job`
    # in a test, a user's script) start from a fresh shell's state and may re-execute too.
    os.environ.pop(REEXEC_MARK, None)


if __name__ == "__main__":
    if sys.argv[1:2] == ["enter"]:
        # `enter … -- CMD` on a running dev container: exec docker before anything else is
        # imported (standard library only, so not even the .venv is needed); else carry on.
        from bakery.devbox.fast import enter_fast

        enter_fast(sys.argv[2:])
    _in_project_venv()
    from bakery.cli import main

    sys.exit(main(sys.argv[1:]))
