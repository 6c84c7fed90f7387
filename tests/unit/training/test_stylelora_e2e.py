"""`python -m stylelora smoke` in a fresh process, as a non-root user whose HOME does not exist.

This is how the image test suite runs it: a mounted host folder as --output, files must come out
owned by the running user with 0644/0755 (safetensors 0.8 writes 0600), and nothing may land in
the working directory or HOME.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from stylelora_kit import REPO

NOBODY = 65534


def run_as_prefix() -> tuple[list[str], int]:
    """Root drops to nobody. The interpreter may sit under root's 0700 home (pyenv), so nobody
    keeps CAP_DAC_READ_SEARCH only: it can read everything and write only where nobody may."""
    if os.geteuid() != 0:
        return [], os.getuid()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and util-linux setpriv is missing")
    caps = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
    prefix = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *caps]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot drop to uid {NOBODY} here: {probe.stderr.strip()}")
    return prefix, NOBODY


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """Like /tmp or a mounted host folder: any user may create entries in it."""
    base = Path(tempfile.mkdtemp(prefix="stylelora-e2e-"))
    base.chmod(0o1777)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_smoke_as_a_non_root_user_without_a_home(shared_dir: Path) -> None:
    prefix, uid = run_as_prefix()
    out = shared_dir / "out"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": "/nonexistent",
        "PYTHONPATH": str(REPO),
        "LANG": "C.UTF-8",
    }
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "stylelora", "smoke", "--output", str(out)],
        cwd=shared_dir, env=env, capture_output=True, text=True, timeout=600, umask=0o022, check=False,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])
    assert verdict["ok"] is True, json.dumps(verdict["checks"], indent=1)
    assert proc.returncode == 0
    assert [p.name for p in shared_dir.iterdir()] == ["out"]  # nothing in the working directory
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert out.stat().st_uid == uid
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "learned_embeds.safetensors",
        "metrics.jsonl",
        "pytorch_lora_weights.safetensors",
        "run.json",
        "sample.png",
    ]
    for path in out.iterdir():
        assert (stat.S_IMODE(path.stat().st_mode), path.stat().st_uid) == (0o644, uid), path.name
