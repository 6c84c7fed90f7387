"""What the benchmarks share: the run context, docker subprocess helpers, builds, cleanup.

The harness talks to Docker with plain `docker` subprocesses (it measures what a user types) and,
for builds, through bakery's own `engine.build_image`, so both sides of a build comparison run
the same `docker buildx build --progress plain` command shape and are parsed by the same code.
Everything a benchmark creates carries the run id in its name and is removed at the end of the
run (`Context.cleanup`), by exact name or id, never by pattern.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CPU_VARIANT = "2.13.0-cpu-py3.11"
CUDA_VARIANT = "2.9.1-cuda12.8-py3.11"
BASE_IMAGE = "bakery/debian:bookworm"
BASE_REF = "docker.io/library/debian:bookworm-slim"
BASE_MAP = f"{BASE_REF}={BASE_IMAGE}"
LONG = 3600.0  # timeout of one heavy docker command (save/load/build of a large image)
# Build contexts live at fixed paths: buildx keys its incremental upload of the named contexts
# (the local pip sources, GBs here) by the build's context directory, so a new temporary
# directory per run would re-upload all of them on its first build (minutes of I/O, measured).
STABLE = Path(os.environ.get("BAKERY_BENCH_DIR") or Path.home() / ".cache" / "bakery-bench")


class BenchError(RuntimeError):
    """A benchmark could not run; the message says what failed."""


@dataclass
class Context:
    """One `python -m bench` run: options, a scratch directory, and what to clean up."""

    root: Path
    work: Path
    run_id: str
    quick: bool
    reps_override: int | None = None
    log: Callable[[str], None] = field(default=lambda text: print(text, file=sys.stderr))
    memo: dict[str, Any] = field(default_factory=dict)
    _cleanups: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    def reps(self, quick: int, full: int) -> int:
        """Repetitions for a benchmark: --reps if given, else its quick or full default."""
        if self.reps_override is not None:
            return self.reps_override
        return quick if self.quick else full

    def on_cleanup(self, what: str, action: Callable[[], None]) -> None:
        self._cleanups.append((what, action))

    def cleanup(self) -> None:
        """Undo everything registered, newest first; a failure is logged, not raised."""
        while self._cleanups:
            what, action = self._cleanups.pop()
            try:
                action()
            except Exception as exc:  # cleanup must go on past one failure
                self.log(f"cleanup of {what} failed: {exc}")

    def project_dir(self, purpose: str) -> Path:
        """An empty directory at a fixed path for a build context (see STABLE)."""
        path = STABLE / purpose
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def name(self, purpose: str) -> str:
        """A docker-safe unique name for something this run creates."""
        return f"bench-{purpose}-{self.run_id}"


@contextmanager
def exclusive_run() -> Iterator[None]:
    """One bench run at a time on this machine (they share STABLE and the daemon)."""
    STABLE.mkdir(parents=True, exist_ok=True)
    with (STABLE / ".lock").open("w", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BenchError(
                f"another `python -m bench` is running (lock {STABLE}/.lock)"
            ) from None
        yield


# A full run wrote tens of GB (images, BuildKit cache) and once filled the disk (issue 17).
MIN_FREE_GB = {"quick": 20, "full": 60}


def disk_shortfalls(free: Mapping[Path, int], need: int) -> list[str]:
    """One sentence per folder whose file system has less than `need` bytes free."""
    return [
        f"{path} has {bytes_gb(nbytes)} free, the run needs {bytes_gb(need)}"
        for path, nbytes in free.items()
        if nbytes < need
    ]


def bytes_gb(nbytes: float) -> str:
    return f"{nbytes / 1e9:.1f} GB"


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def require_free_disk(need: int) -> dict[Path, int]:
    """Free bytes where the run writes (Docker's data root, STABLE, the temp folder); BenchError
    before anything is created when one has less than `need`."""
    root = docker("info", "--format", "{{.DockerRootDir}}", timeout=60, check=False)
    folders = [Path(root)] if root and Path(root).exists() else []  # a remote daemon: unknown
    folders += [STABLE, Path(tempfile.gettempdir())]
    free = {folder: shutil.disk_usage(_existing(folder)).free for folder in folders}
    short = disk_shortfalls(free, need)
    if short:
        raise BenchError(
            f"not enough free disk: {'; '.join(short)} — free some space, or pass "
            "--min-free-gb with a smaller figure if you know this run needs less"
        )
    return free


_CACHE_ID = re.compile(r"^ID:\s+(\S+?)\*?\s*$", re.MULTILINE)


def parse_cache_ids(du_verbose: str) -> set[str]:
    """The record ids in `docker buildx du --verbose` output."""
    return set(_CACHE_ID.findall(du_verbose))


def build_cache_ids() -> set[str]:
    return parse_cache_ids(docker("buildx", "du", "--verbose", timeout=300, check=False))


def prune_new_cache(before: set[str], log: Callable[[str], None]) -> int:
    """Remove the BuildKit cache records that appeared since `before`, each by its exact id.

    Children go before their parents, so a few passes are made. On a daemon shared with other
    builds, records those builds made during the run are new too: `--keep-cache` leaves them.
    """
    new = build_cache_ids() - before
    left = prune_cache_records(new)
    if left:
        log(f"cleanup: {len(left)} new build cache record(s) are in use and were left")
    return len(new) - len(left)


def prune_cache_records(ids: set[str]) -> set[str]:
    """`docker buildx prune --filter id=ID` for each; returns the ids still there afterwards."""
    left = set(ids)
    for _ in range(4):  # a parent goes only after its children: a pass per level
        for record in sorted(left):
            docker("buildx", "prune", "--force", "--filter", f"id={record}", check=False)
        still = left & build_cache_ids()
        if still == left:
            break
        left = still
    return left


def system_df() -> list[dict[str, Any]]:
    """`docker system df` as records (Type, TotalCount, Size, Reclaimable)."""
    text = docker("system", "df", "--format", "{{json .}}", timeout=300, check=False)
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


def new_run_id() -> str:
    return time.strftime("%m%d%H%M") + "-" + uuid.uuid4().hex[:6]


# ---------------------------------------------------------------------------------------------
# Subprocesses


def run(
    command: Sequence[str],
    *,
    timeout: float = LONG,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a command with captured text output; raise BenchError with its stderr when it fails."""
    done = subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env) if env is not None else None,
        cwd=str(cwd) if cwd else None,
        check=False,
    )
    if check and done.returncode != 0:
        raise BenchError(
            f"`{' '.join(command)}` exited {done.returncode}: {(done.stderr or '').strip()[-1500:]}"
        )
    return done


def docker(*args: str, timeout: float = LONG, check: bool = True) -> str:
    return run(["docker", *args], timeout=timeout, check=check).stdout.strip()


def timed(command: Sequence[str], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.monotonic()
    done = run(command, **kwargs)
    return time.monotonic() - started, done


def timed_shell(
    script: str, *, timeout: float = LONG, env: Mapping[str, str] | None = None
) -> float:
    """Wall seconds of a `sh -c` pipeline (pipefail on); raises BenchError if it fails."""
    started = time.monotonic()
    run(["bash", "-o", "pipefail", "-c", script], timeout=timeout, env=env)
    return time.monotonic() - started


# ---------------------------------------------------------------------------------------------
# Images


@dataclass(frozen=True)
class ImageFacts:
    id: str
    size: int
    layers: tuple[str, ...]  # diff ids, bottom first
    tags: tuple[str, ...]


def image_facts(ref: str) -> ImageFacts | None:
    done = run(["docker", "image", "inspect", ref], check=False, timeout=120)
    if done.returncode != 0:
        return None
    data = json.loads(done.stdout)[0]
    return ImageFacts(
        id=data["Id"],
        size=int(data["Size"]),
        layers=tuple(data["RootFS"].get("Layers") or ()),
        tags=tuple(data.get("RepoTags") or ()),
    )


def layer_sizes(diff_ids: Sequence[str]) -> list[int] | None:
    """Bytes of each layer as the daemon recorded them (its layerdb), bottom first.

    Read from <DockerRootDir>/image/<driver>/layerdb/sha256/<chain id>/size (root only);
    None when the daemon's files cannot be read (another machine, rootless, containerd store).
    """
    from bakery.bundle import chain_ids  # noqa: PLC0415

    info = docker("info", "--format", "{{.DockerRootDir}}\t{{.Driver}}", timeout=60, check=False)
    root, _, driver = info.partition("\t")
    layerdb = Path(root) / "image" / driver / "layerdb" / "sha256"
    sizes = []
    try:
        for chain in chain_ids(diff_ids):
            text = (layerdb / chain.removeprefix("sha256:") / "size").read_text(encoding="utf-8")
            sizes.append(int(text.strip()))
    except (OSError, ValueError):
        return None
    return sizes


def new_layer_bytes(old: ImageFacts | None, new: ImageFacts) -> int | None:
    """Bytes of the layers of `new` that `old` does not have (by chain id): what a rebuild wrote."""
    from bakery.bundle import chain_ids  # noqa: PLC0415

    sizes = layer_sizes(new.layers)
    if sizes is None:
        return None
    have = set(chain_ids(old.layers)) if old is not None else set()
    return sum(s for c, s in zip(chain_ids(new.layers), sizes, strict=True) if c not in have)


def remove_tag(ref: str) -> None:
    """Remove a tag this run created (the image stays if something else still uses it)."""
    run(["docker", "image", "rm", ref], check=False, timeout=600)


def remove_untagged(image_id: str) -> None:
    """Remove an image id this run built, but only if no tag points at it any more."""
    facts = image_facts(image_id)
    if facts is not None and not facts.tags:
        run(["docker", "image", "rm", image_id], check=False, timeout=600)


def remove_container(name: str) -> None:
    run(["docker", "rm", "-f", name], check=False, timeout=120)


def prune_cache_mounts(marker: str) -> int:
    """Prune BuildKit cache-mount records whose id contains `marker` (this run's own only)."""
    listing = docker("buildx", "du", "--verbose", timeout=300, check=False)
    ids, current = [], ""
    for line in listing.splitlines():
        if line.startswith("ID:"):
            current = line.split(":", 1)[1].strip()
        elif line.startswith("Description:") and "cached mount" in line and marker in line:
            ids.append(current.rstrip("*"))
    for record in ids:
        docker("buildx", "prune", "--force", "--filter", f"id={record}", timeout=300, check=False)
    return len(ids)


# ---------------------------------------------------------------------------------------------
# Builds through bakery's engine


@dataclass(frozen=True)
class BuildRun:
    image_id: str
    seconds: float  # wall seconds of `docker buildx build`
    steps_total: int
    steps_cached: int
    steps_run: tuple[str, ...]
    log_path: Path


def host_pip_build_inputs(tmp: Path) -> tuple[dict[str, Path | str], list[tuple[str, Path]]]:
    """The host's pip sources as bakery passes them: named contexts and secret files.

    Returns (named build contexts pip-local-N, [(secret id, file)]), the pip.conf written into
    `tmp`. Both sides of a build comparison get exactly these, so only the Dockerfile differs.
    """
    from bakery.pipsources import check_local_dirs, find_ca_bundle, sources_from_host  # noqa: PLC0415

    pip = sources_from_host()
    contexts: dict[str, Path | str] = {
        f"pip-local-{i}": d for i, d in enumerate(check_local_dirs(pip))
    }
    tmp.mkdir(parents=True, exist_ok=True)
    pipconf = tmp / "pip.conf"
    pipconf.write_text(pip.pip_conf(), encoding="utf-8")
    pipconf.chmod(0o600)
    secrets = [("pipconf", pipconf)]
    ca = find_ca_bundle(None)
    if ca is not None:
        secrets.append(("ca", ca))
    return contexts, secrets


def build(
    context: Path,
    dockerfile: Path,
    log_path: Path,
    *,
    tags: Sequence[str] = (),
    contexts: Mapping[str, Path | str] | None = None,
    secrets: Sequence[tuple[str, Path]] = (),
    build_args: Mapping[str, str] | None = None,
) -> BuildRun:
    """`docker buildx build --progress plain` via bakery.engine; raises BenchError on failure."""
    from bakery import engine  # noqa: PLC0415
    from bakery.errors import BakeryError  # noqa: PLC0415

    spec = engine.BuildSpec(
        context=context,
        dockerfile=dockerfile,
        log_path=log_path,
        tags=tuple(tags),
        build_args=dict(build_args or {}),
        secrets=tuple(engine.Secret(i, p) for i, p in secrets),
        build_contexts=dict(contexts or {}),
    )
    started = time.monotonic()
    try:
        outcome = engine.build_image(spec)
    except BakeryError as exc:
        raise BenchError(f"build of {dockerfile} failed: {exc.render()}") from exc
    return BuildRun(
        image_id=outcome.image_id,
        seconds=time.monotonic() - started,
        steps_total=outcome.steps_total,
        steps_cached=outcome.steps_cached,
        steps_run=outcome.steps_run,
        log_path=log_path,
    )


def bakery_command(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "build.py"), *args]


# ---------------------------------------------------------------------------------------------
# Project copies


def copy_project(dest: Path) -> Path:  # dest: an empty Context.project_dir
    """What `python build.py` needs to build the cpu variant, in a throwaway directory.

    The copy renders to the same images/ (checked by `build.py generate --check`), so its build
    hits the same BuildKit cache as a build from the repository.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("matrix.toml", "Dockerfile.in", ".dockerignore", "docker-bake.json"):
        shutil.copy(ROOT / name, dest / name)
    shutil.copytree(ROOT / "images", dest / "images")
    shutil.copytree(
        ROOT / "stylelora", dest / "stylelora", ignore=shutil.ignore_patterns("__pycache__")
    )
    (dest / "bakery" / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "bakery" / "probe.py", dest / "bakery" / "probe.py")
    shutil.copy(ROOT / "bakery" / "data" / "with-build-secrets", dest / "bakery" / "data")
    check = ["generate", "--check", "--matrix", str(dest / "matrix.toml")]
    run(bakery_command(*check, "--template", str(dest / "Dockerfile.in")), timeout=300)
    return dest


EDITED_FILE = Path("stylelora/progress.py")


def edit_training_code(project: Path, marker: str) -> None:
    """The training-code change: one line appended to one stylelora module (unique each time)."""
    path = project / EDITED_FILE
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"\n# bench edit .*\n$", "\n", text)
    path.write_text(text.rstrip("\n") + f"\n# bench edit {marker}\n", encoding="utf-8")


_TRANSFER = re.compile(r"transferring (pip-local-\d+): ([\d.]+)([kMG]?B)\b.*\bdone$")
_UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def uploaded_context_bytes(log_text: str) -> int:
    """Bytes BuildKit uploaded of the local pip sources (named contexts) in one build's log."""
    total = 0.0
    for line in log_text.splitlines():
        match = _TRANSFER.search(line)
        if match:
            total += float(match.group(2)) * _UNITS[match.group(3)]
    return int(total)
