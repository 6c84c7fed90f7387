"""The README on a machine that has never seen bakery: scripts/fresh-machine.sh (issue 14).

It installs an engine, bakery and builds an image inside a clean Debian 12 container, which
takes tens of minutes, so it runs only when asked: BAKERY_FRESH_MACHINE=1 pytest tests/fresh.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
OPT_IN = "BAKERY_FRESH_MACHINE"
TIMEOUT = 3 * 3600.0

pytestmark = [
    pytest.mark.docker,
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get(OPT_IN) != "1",
        reason=f"replays the README in a fresh Debian 12 container (tens of minutes): set {OPT_IN}=1",
    ),
]


@pytest.mark.parametrize("mode", ["root", "sudo-user"])
def test_readme_commands_pass_on_a_fresh_debian_12(mode: str, tmp_path: Path) -> None:
    log = tmp_path / f"fresh-machine-{mode}.log"
    with log.open("w") as out:
        done = subprocess.run(
            ["bash", str(REPO / "scripts" / "fresh-machine.sh"), mode],
            env={**os.environ, "FRESH_WORKFLOW": "1"},  # sudo-user: the workflow replay too
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=TIMEOUT,
            check=False,
        )
    text = log.read_text(errors="replace")
    assert done.returncode == 0, text[-6000:]
    assert f"PASSED as {mode}" in text
    assert "first command, as written in README.md: scripts/setup.sh && python3 build.py" in text
    if mode == "sudo-user":
        assert "PASSED: workflow replayed as alice" in text
