"""Helpers for the bundle tests (a plain module: conftest.py is for fixtures).

The small synthetic images are built on the local base `bakery/debian:bookworm`: a few MB of
random data in their own layer, a fake `bakery-probe` that prints a verdict the way the real
one does, a non-root user and a config with awkward values (quotes, `$`, backslashes, an
empty value), so save/load and export/import have something to lose.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from bakery import engine
from bakery.cli import main

ROOT = Path(__file__).resolve().parents[2]
POLL_SECONDS = 0.002  # the kill tests catch a partial archive at a given size: poll fast

FAKE_PROBE = """#!/bin/sh
# Prints what the real bakery-probe prints (JSON, sorted keys, indent 2), minus torch.
printf '{\\n  "hint": "synthetic image, no torch",\\n  "verdict": "ok"\\n}\\n'
"""

SMALL_DOCKERFILE = """\
FROM {base}
RUN head -c 3000000 /dev/urandom > /opt/weights.bin
COPY --chmod=0755 bakery-probe /usr/local/bin/bakery-probe
RUN useradd --uid 1234 --create-home trainer && mkdir -p /workspace && chown 1234 /workspace
COPY code/ /workspace/code/
ENV PATH=/opt/tools/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    BAKERY_ACCELERATOR=cpu \\
    GREETING="hello world"
ENV TRICKY='say "hi" to $HOME, back\\slash' EMPTY=""
LABEL io.bakery.variant="synthetic-small" org.example.note="two words"
WORKDIR /workspace
USER 1234:1234
ENTRYPOINT ["/usr/bin/env"]
CMD ["sh", "-c", "echo \\"$GREETING from $(pwd) as $(id -u)\\""]
"""

CHANGED_DOCKERFILE = """\
FROM {parent}
COPY code/train.py /workspace/code/train.py
"""


@dataclass(frozen=True)
class SmallImages:
    """Image A and image B = A + one changed code file (the "training code change")."""

    a: str
    a_id: str
    b: str
    b_id: str


def build_image(context: Path, dockerfile: str, tag: str) -> str:
    """Build `dockerfile` (text) in `context` with bakery's engine; return the image id."""
    path = context / "Dockerfile"
    path.write_text(dockerfile, encoding="utf-8")
    spec = engine.BuildSpec(
        context=context,
        dockerfile=path,
        log_path=context.parent / f"{context.name}.log",
        tags=(tag,),
    )
    return engine.build_image(spec).image_id


def write_small_context(context: Path, code: str) -> None:
    (context / "code").mkdir(parents=True, exist_ok=True)
    (context / "code" / "train.py").write_text(code, encoding="utf-8")
    (context / "bakery-probe").write_text(FAKE_PROBE, encoding="utf-8")


def run_main(args: list[str], host: str | None = None) -> int:
    """`python build.py ARGS` in-process, against the daemon at `host` (None: the default)."""
    with engine.connected(host):
        return main(args)


def copy_bundle(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def flip_byte(path: Path, offset: int) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0x01]))


def truncate(path: Path, remove: int) -> None:
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - remove)


def docker_shim(directory: Path) -> tuple[dict[str, str], Path]:
    """(PATH environment, log): a `docker` wrapper that logs every command, then runs it."""
    real = shutil.which("docker")
    if real is None:
        pytest.fail("no docker CLI on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "docker-calls.log"
    shim = directory / "docker"
    shim.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{real}" "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    env = {"PATH": f"{directory}:{os.environ['PATH']}"}
    return env, log


def docker_calls(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def run_loader(
    bundle: Path, env: dict[str, str], *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """`sh BUNDLE/load.sh ARGS` with `env` added to this process's environment."""
    return subprocess.run(
        ["sh", str(bundle / "load.sh"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_save(image: str, output: Path) -> subprocess.Popen[bytes]:
    """`python build.py save --image IMAGE -o OUTPUT` as its own process (to be killed)."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "build.py"), "save", "--image", image, "-o", str(output)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def connected(host: str) -> AbstractContextManager[None]:
    return engine.connected(host)
