"""Slim variants: start an image that borrows the host's torch environment, read-only.

`python build.py run --slim --host-env ENV [selection] [-- COMMAND]` starts the slim image with
ENV bind-mounted read-only at /opt/host-env and its site-packages on PYTHONPATH (the image's own
site-packages stay as they are), the accelerator's device flags and the host user's ids.
`python build.py compose ...` writes the same as a compose.yaml a user can keep.

Before anything starts, the host environment is read without running any of it (pyvenv.cfg,
*.dist-info, torch/version.py) and refused, with every reason at once, when it cannot work in
the image: another Python major.minor, no torch, torch or torchvision of another accelerator's
build, compiled extensions that need a newer glibc than the image has, or files the container
user cannot read.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import stat
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from bakery import argtypes, engine
from bakery.atomicfile import pending_file
from bakery.builder import detect_host_target
from bakery.compat import expected_torchvision, python_key
from bakery.devbox import (
    DEFAULT_SHM,
    GpuAccess,
    HostUser,
    gpu_access,
    invoking_user,
    parse_user,
)
from bakery.errors import EXIT_OK, GuardError, UsageError, shown
from bakery.gpuselect import add_run_flags, parse_env_flags, select_gpus
from bakery.matrix import Variant, load_matrix, select_variants
from bakery.ui import err_console

COMMANDS: tuple[str, ...] = ("run", "compose")

HOST_ENV_MOUNT = "/opt/host-env"  # the whole environment, so conda's $ORIGIN/../lib rpaths work
WORKSPACE_MOUNT = "/workspace"
COMPOSE_SERVICE = "train"
COMPOSE_COMMAND = ("python", "-m", "stylelora", "smoke")  # `docker compose up` proves the setup
GLIBC_LABEL = "io.bakery.glibc"  # read when the image carries it; else `getconf` in the image
GLIBC_PROBE_TIMEOUT = 60.0
# Legacy manylinux names (PEP 513, 571, 599) and the glibc each promises to need at most.
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_\w+")
_GLIBC_SYMBOL = re.compile(rb"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?")
_SCAN_CHUNK = 8 << 20

RUN_DESCRIPTION = """\
Start a variant's image in the foreground, as the host user, with the accelerator's devices.

Slim images (--slim) carry no torch: --host-env names a host virtual environment or conda
environment (ROCm, CUDA or CPU torch) that is mounted read-only at /opt/host-env and put on
PYTHONPATH. Before anything starts, bakery refuses an environment whose Python major.minor
differs from the image's, that has no torch (or torchvision, where the target has it) of the
accelerator's build, whose compiled extensions need a newer glibc than the image, or that the
container user cannot read. The current directory (--workspace) is mounted at /workspace.

  python build.py run --slim --host-env ~/venvs/rocm -- python -m stylelora smoke
"""
COMPOSE_DESCRIPTION = """\
Write a compose.yaml (service `train`) that starts the selected image the way `run` does: the
host environment read-only on PYTHONPATH, the workspace, the device flags and the user. The
same checks run first, and Compose reads the file back before it replaces an existing one.
Its command runs the training smoke test; override it after `--` or with
`docker compose run --rm train COMMAND`. Re-run this after changing the host environment.
"""


# ---------------------------------------------------------------------------------------------
# The host environment, read without executing it


@dataclass(frozen=True)
class Dist:
    """An installed distribution, from its *.dist-info folder."""

    name: str
    version: str
    dist_info: Path

    @property
    def local(self) -> str:
        """The build label: 'rocm6.3' of '2.7.1+rocm6.3', '' for none."""
        return self.version.partition("+")[2]

    @property
    def release(self) -> str:
        return self.version.partition("+")[0]


@dataclass(frozen=True)
class TorchInfo:
    dist: Dist
    cuda: str | None  # torch.version.cuda
    hip: str | None  # torch.version.hip
    python_tags: tuple[str, ...]  # the wheel's interpreter tags, e.g. ("cp311",)


@dataclass(frozen=True)
class HostEnv:
    root: Path
    python: str  # "3.11"
    python_source: str  # where that was read
    site_packages: Path
    torch: TorchInfo | None
    torchvision: Dist | None

    @property
    def container_site_packages(self) -> str:
        return f"{HOST_ENV_MOUNT}/{self.site_packages.relative_to(self.root).as_posix()}"


def inspect_host_env(path: Path) -> HostEnv:
    """Read what the environment at `path` holds; GuardError if it is not a usable environment."""
    root = path.expanduser().resolve()
    # A path that is not there is a mistake on the command line (usage), not a guard verdict.
    if not root.exists():
        raise UsageError(
            f"--host-env {shown(str(path))}: no such folder",
            fix="pass the folder of a virtual environment or conda environment (the one holding bin/python)",
        )
    if not root.is_dir() or not os.access(root, os.R_OK | os.X_OK):
        raise UsageError(
            f"--host-env {shown(str(path))}: not a readable folder",
            fix="pass the root folder of the environment (the one holding bin/ and lib/)",
        )
    python, source = env_python(root)
    site = root / "lib" / f"python{python}" / "site-packages"
    if not site.is_dir() or not os.access(site, os.R_OK | os.X_OK):
        raise GuardError(
            f"host environment {root} has no readable lib/python{python}/site-packages",
            why=f"its Python is {python} ({source})",
            fix="pass the environment's root folder (the one holding bin/ and lib/)",
        )
    return HostEnv(
        root=root,
        python=python,
        python_source=source,
        site_packages=site,
        torch=read_torch(site),
        torchvision=find_dist(site, "torchvision"),
    )


def env_python(root: Path) -> tuple[str, str]:
    """The environment's Python "X.Y" and where it was read: pyvenv.cfg, else lib/pythonX.Y."""
    config = read_pyvenv_cfg(root / "pyvenv.cfg")
    for key in ("version_info", "version"):  # uv writes version_info, venv writes version
        match = re.match(r"(\d+)\.(\d+)", config.get(key, ""))
        if match:
            return f"{match[1]}.{match[2]}", f"pyvenv.cfg {key} = {config[key]}"
    found = sorted(p.parent.name[len("python") :] for p in root.glob("lib/python3.*/site-packages"))
    if len(found) == 1:  # conda environments have no pyvenv.cfg
        return found[0], f"lib/python{found[0]}/site-packages"
    raise GuardError(
        f"cannot tell which Python the host environment {root} is for",
        why="it has no pyvenv.cfg with a version and "
        + (
            f"several lib/python3.*/site-packages ({', '.join(found)})"
            if found
            else "no lib/python3.*/site-packages"
        ),
        fix="pass the root folder of a virtual environment or conda environment",
    )


def read_pyvenv_cfg(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {key.strip().lower(): value.strip() for key, _, value in pairs}


def read_metadata_field(path: Path, name: str) -> list[str]:
    """Every value of header `name` in an email-style metadata file (METADATA, WHEEL)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    header = text.split("\n\n", 1)[0]
    prefix = f"{name.lower()}:"
    return [
        line[len(prefix) :].strip()
        for line in header.splitlines()
        if line.lower().startswith(prefix)
    ]


def find_dist(site: Path, name: str) -> Dist | None:
    """The distribution `name` installed in `site`, from the newest-looking *.dist-info."""
    wanted = canonicalize_name(name)
    for dist_info in sorted(site.glob("*.dist-info"), reverse=True):
        dist_name, _, _ = dist_info.name[: -len(".dist-info")].partition("-")
        if canonicalize_name(dist_name) != wanted:
            continue
        versions = read_metadata_field(dist_info / "METADATA", "Version")
        if versions:
            return Dist(name=name, version=versions[0], dist_info=dist_info)
    return None


def read_torch(site: Path) -> TorchInfo | None:
    dist = find_dist(site, "torch")
    if dist is None or not (site / "torch" / "__init__.py").is_file():
        return None
    version_py = read_version_py(site / "torch" / "version.py")
    tags = read_metadata_field(dist.dist_info / "WHEEL", "Tag")
    return TorchInfo(
        dist=dist,
        cuda=version_py.get("cuda"),
        hip=version_py.get("hip"),
        python_tags=tuple(sorted({tag.split("-")[0] for tag in tags})),
    )


def read_version_py(path: Path) -> dict[str, str | None]:
    """The constant assignments of torch/version.py (`cuda = '12.8'`), parsed, never imported."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return {}
    values: dict[str, str | None] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        if isinstance(node, ast.AnnAssign):  # cuda: Optional[str] = '12.8'
            targets = [node.target]
        elif isinstance(node, ast.Assign):
            targets = node.targets
        value = getattr(node, "value", None)
        name = targets[0] if len(targets) == 1 else None
        if isinstance(name, ast.Name) and isinstance(value, ast.Constant):
            values[name.id] = None if value.value is None else str(value.value)
    return values


# ---------------------------------------------------------------------------------------------
# Guards: everything that makes a host environment unusable in a variant's image


def env_problems(env: HostEnv, v: Variant) -> list[str]:
    """Every reason `env` cannot work in `v`'s image (empty: it can), each with its fix."""
    problems: list[str] = []
    if env.python != v.python:
        problems.append(
            f"its Python is {env.python} ({env.python_source}) but the image's is {v.python}: "
            "compiled packages built for one do not load in the other — use an environment made "
            f"with Python {v.python}, or a slim variant for Python {env.python} if the matrix has "
            "one (python build.py list --flavour slim)"
        )
    if env.torch is None:
        problems.append(
            f"it has no torch (no torch-*.dist-info and torch/ in {env.site_packages}) — "
            f"install torch {v.torch} of the {v.index.name} build into it ({v.index.url})"
        )
        return problems
    if env.python == v.python:  # else the Python problem above says it already
        problems += wheel_tag_problems(env.torch, v)
    problems += torch_problems(env.torch, v)
    problems += torchvision_problems(env.torchvision, env.torch, v)
    problems += stack_problems(env, v)
    return problems


def stack_problems(env: HostEnv, v: Variant) -> list[str]:
    """A slim image carries no application stack either: the host env must hold it."""
    missing = [(n, ver) for n, ver in v.stack if find_dist(env.site_packages, n) is None]
    if not missing:
        return []
    pins = " ".join(f"{n}=={ver}" for n, ver in missing)
    return [
        f"it lacks the variant's stack package(s) {', '.join(n for n, _ in missing)} "
        f"(not in {env.site_packages}) — install them into it: pip install {pins}"
    ]


def wheel_tag_problems(torch: TorchInfo, v: Variant) -> list[str]:
    """pyvenv.cfg can be wrong (a copied or hand-made env); torch's own wheel tag cannot."""
    cp = "cp" + v.python.replace(".", "")
    if not torch.python_tags or cp in torch.python_tags:
        return []
    return [
        f"its torch wheel was built for {', '.join(torch.python_tags)}, not {cp} (Python "
        f"{v.python}) — recreate the environment with Python {v.python}"
    ]


def torch_problems(torch: TorchInfo, v: Variant) -> list[str]:
    problems: list[str] = []
    wrong = wrong_build(torch.dist.version, torch.cuda, torch.hip, v)
    if wrong:
        own = "rocm" if torch.hip else "cuda" if torch.cuda else "cpu"
        problems.append(
            f"torch {torch.dist.version} {wrong} — install that build into the environment "
            f"(pip install torch=={v.torch} --index-url {v.index.url}), or run it with --target {own}"
        )
    return problems


def wrong_build(version: str, cuda: str | None, hip: str | None, v: Variant) -> str:
    """Why this torch build cannot drive `v`'s accelerator ('' when it can)."""
    local = version.partition("+")[2]
    found = f"a ROCm {hip} build" if hip else f"a CUDA {cuda} build" if cuda else "a CPU-only build"
    if v.accelerator == "rocm":
        wanted = v.index.local.lstrip("+")  # "rocm6.3"; AMD's own wheels say rocm6.3.4.git...
        if hip is None or not (local == wanted or local.startswith(f"{wanted}.")):
            return f"is {found}, but the {v.target} image needs the ROCm {v.index.version} build (+{wanted})"
    elif v.accelerator == "cuda" and cuda is None:
        return f"is {found}, but the {v.target} image needs a CUDA build"
    return ""  # cpu: every build runs on the CPU


def torchvision_problems(vision: Dist | None, torch: TorchInfo, v: Variant) -> list[str]:
    if v.companion("torchvision") is None:
        return []
    if vision is None:
        pair = expected_torchvision(torch.dist.release)
        return [
            f"it has no torchvision, which the {v.target} images carry — install torchvision "
            f"{pair} (the one for torch {torch.dist.release}) from the same index as torch"
        ]
    problems = []
    if vision.local != torch.dist.local:
        problems.append(
            f"torchvision {vision.version} and torch {torch.dist.version} are different builds "
            "(their +labels differ): install both from the same index in one pip command"
        )
    if vision.release != expected_torchvision(torch.dist.release):
        problems.append(
            f"torchvision {vision.version} does not pair with torch {torch.dist.version} "
            f"(it needs torchvision {expected_torchvision(torch.dist.release)}): its operators fail "
            "to load (`operator torchvision::nms does not exist`)"
        )
    return problems


def refuse(env: HostEnv, image: str, problems: Sequence[str]) -> GuardError:
    """One GuardError naming every problem, each with its fix."""
    root = env.root
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    lines = "".join(f"\n  - {p}" for p in problems)
    return GuardError(
        f"the host environment {root} cannot work in {image} ({count}); nothing was started:{lines}"
    )


# ---------------------------------------------------------------------------------------------
# glibc: what the environment's compiled code needs, what the image has


@dataclass(frozen=True)
class GlibcNeed:
    version: tuple[int, ...]
    source: str  # which wheel tag or file says so


def format_version(version: Sequence[int]) -> str:
    return ".".join(str(part) for part in version)


def platform_glibc(platform: str) -> tuple[int, ...] | None:
    """The glibc a wheel platform tag promises to need at most: () none (pure), None unknown."""
    if platform == "any":
        return ()
    legacy = LEGACY_MANYLINUX.get(platform.split("_", 1)[0])  # manylinux2014_x86_64
    if legacy is not None:
        return legacy
    match = _MANYLINUX.fullmatch(platform)
    return (int(match[1]), int(match[2])) if match else None  # linux_x86_64, musllinux: unknown


def wheel_glibc(tags: Sequence[str]) -> tuple[int, ...] | None:
    """The glibc a wheel needs from its WHEEL Tag lines: the least any of its platforms promises."""
    promises = [
        platform_glibc(platform)
        for tag in tags
        for platform in tag.rsplit("-", 1)[-1].split(".")  # compressed sets: a.b
    ]
    known = [p for p in promises if p is not None]
    return min(known) if known else None


def highest_glibc_symbol(path: Path) -> tuple[int, ...] | None:
    """The highest GLIBC_x.y symbol version named in a shared object (a plain byte search)."""
    best: tuple[int, ...] | None = None
    tail = b""
    with path.open("rb") as handle:
        while chunk := handle.read(_SCAN_CHUNK):
            window = tail + chunk
            for match in _GLIBC_SYMBOL.finditer(window):
                found = tuple(int(g) for g in match.groups() if g is not None)
                best = found if best is None else max(best, found)
            tail = window[-32:]  # a name cut by a chunk boundary is found in the next window
    return best


def is_shared_object(name: str) -> bool:
    return name.endswith(".so") or ".so." in name


def recorded_shared_objects(dist_info: Path, site: Path) -> set[str]:
    """The shared objects a distribution's RECORD lists, as normalised path strings."""
    try:
        lines = (dist_info / "RECORD").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return set()
    paths = (line.split(",", 1)[0] for line in lines)
    return {os.path.normpath(os.path.join(site, p)) for p in paths if is_shared_object(p)}


def glibc_needs(site: Path) -> list[GlibcNeed]:
    """What the compiled code in `site` needs: wheel tags where they say, else symbol versions."""
    needs: list[GlibcNeed] = []
    covered: set[str] = set()
    for dist_info in sorted(site.glob("*.dist-info")):
        promise = wheel_glibc(read_metadata_field(dist_info / "WHEEL", "Tag"))
        if promise is None:  # linux_x86_64, conda, no WHEEL: read its shared objects below
            continue
        covered |= recorded_shared_objects(dist_info, site)
        if promise:
            tag = f"manylinux_{promise[0]}_{promise[1]}"
            needs.append(GlibcNeed(promise, f"{dist_info.name[: -len('.dist-info')]} ({tag})"))
    for path in _shared_objects(site):
        if path in covered:
            continue
        found = highest_glibc_symbol(Path(path))
        if found:
            where = os.path.relpath(path, site)
            needs.append(GlibcNeed(found, f"{where} (GLIBC_{format_version(found)})"))
    return needs


def _shared_objects(site: Path) -> Iterator[str]:
    """Every shared object file under `site` (symlinks to them are not read twice)."""
    for folder, _, files in os.walk(site):
        for name in files:
            path = os.path.join(folder, name)
            if is_shared_object(name) and not os.path.islink(path):
                yield os.path.normpath(path)


def parse_glibc_version(text: str) -> tuple[int, ...] | None:
    """(2, 36) from `getconf GNU_LIBC_VERSION` ("glibc 2.36") or a label ("2.36")."""
    match = re.search(r"(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2])) if match else None


def glibc_problems(needs: Sequence[GlibcNeed], image_glibc: tuple[int, ...]) -> list[str]:
    too_new = sorted((n for n in needs if n.version[:2] > image_glibc[:2]), key=lambda n: n.version)
    if not too_new:
        return []
    worst = too_new[-1]
    shown = ", ".join(n.source for n in reversed(too_new[-3:]))
    return [
        f"its compiled code needs glibc {format_version(worst.version)} but the image has "
        f"{format_version(image_glibc)} ({len(too_new)} file(s) or wheel(s), e.g. {shown}) — "
        f"install wheels built for glibc {format_version(image_glibc)} or older "
        f"(manylinux_2_{image_glibc[1]} or a lower tag), or use the full image"
    ]


def image_glibc(image: str, labels: Mapping[str, str]) -> tuple[int, ...]:
    """The image's glibc version: its label, else `getconf GNU_LIBC_VERSION` run in it."""
    label = parse_glibc_version(labels.get(GLIBC_LABEL, ""))
    if label:
        return label
    result = engine.run_container(
        image, ["getconf", "GNU_LIBC_VERSION"], network="none", timeout=GLIBC_PROBE_TIMEOUT
    )
    found = parse_glibc_version(result.stdout)
    if result.return_code != 0 or found is None:
        raise GuardError(
            f"could not read the glibc version of {image}",
            why=f"`getconf GNU_LIBC_VERSION` exited {result.return_code}: {result.stderr.strip()[-200:]}",
        )
    return found


# ---------------------------------------------------------------------------------------------
# Devices and the container user: the dev containers' own rules (bakery.devbox)


def device_access(v: Variant, dev: Path = Path("/dev")) -> GpuAccess:
    """The accelerator's device flags on this host; GuardError when its device nodes are missing."""
    access = gpu_access(v.accelerator, dev)
    if access.missing:
        raise GuardError(
            f"{access.missing}: the {v.target} image could not reach a GPU",
            fix="install the GPU driver (and for CUDA the NVIDIA container toolkit), or use --target cpu",
        )
    return access


def container_user(requested: str | None) -> HostUser:
    """--user UID:GID, else the user who ran bakery (under sudo, the one who called sudo)."""
    return parse_user(requested) if requested is not None else invoking_user()


def user_text(user: HostUser) -> str:
    return f"{user.uid}:{user.gid}"


def unreadable_for(paths: Sequence[Path], uid: int, gids: Sequence[int]) -> list[Path]:
    """The paths the container user could not read (and, for folders, enter), from mode bits."""
    return [p for p in paths if not _permits(p.stat(), uid, gids)]


def _permits(st: os.stat_result, uid: int, gids: Sequence[int]) -> bool:
    if uid == 0:
        return True
    need = 0o5 if stat.S_ISDIR(st.st_mode) else 0o4
    if st.st_uid == uid:
        bits = st.st_mode >> 6
    elif st.st_gid in gids:
        bits = st.st_mode >> 3
    else:
        bits = st.st_mode
    return bits & need == need


def paths_to_read(env: HostEnv) -> list[Path]:
    """The environment's root, the folders down to site-packages, and torch's entry points."""
    paths = [env.root]
    for part in env.site_packages.relative_to(env.root).parts:
        paths.append(paths[-1] / part)
    if env.torch is not None:
        paths += [env.site_packages / "torch", env.site_packages / "torch" / "__init__.py"]
    return paths


# ---------------------------------------------------------------------------------------------
# The plan: everything decided before docker is called


@dataclass(frozen=True)
class SlimPlan:
    variant: Variant
    image: str
    host_env: HostEnv | None
    workspace: Path
    user: HostUser
    command: tuple[str, ...]
    gpu: GpuAccess
    name: str  # the container's (run)
    extra_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    shm_size: str = DEFAULT_SHM  # the same DataLoader shared memory as `up`
    ipc_host: bool = False

    def environment(self) -> dict[str, str]:
        # The host uid has no home (maybe no passwd entry) in the image: the container's own /tmp.
        env = {"HOME": "/tmp", **self.extra_env}  # noqa: S108
        if self.host_env is not None:
            env["PYTHONPATH"] = self.host_env.container_site_packages
        return env

    def volumes(self) -> tuple[tuple[Path, str, str], ...]:
        mounts = [(self.workspace, WORKSPACE_MOUNT, "rw")]
        if self.host_env is not None:
            mounts.insert(0, (self.host_env.root, HOST_ENV_MOUNT, "ro"))
        return tuple(mounts)


def add_arguments(p: argparse.ArgumentParser, *, compose: bool) -> None:
    p.add_argument("--slim", action="store_true", help="the slim flavour (same as --flavour slim)")
    p.add_argument(
        "--host-env",
        type=Path,
        help="slim: the host environment (venv or conda) to mount read-only",
    )
    p.add_argument(
        "--workspace",
        type=Path,
        default=Path(),
        help=f"host folder mounted at {WORKSPACE_MOUNT} (default: the current one)",
    )
    p.add_argument("--user", help="container UID:GID (default: the host user's)")
    p.add_argument("--repository", default=None, help="override the matrix's repository")
    p.add_argument(
        "--shm-size",
        default=DEFAULT_SHM,
        help=f"shared memory for DataLoader workers, as `up` (default: {DEFAULT_SHM})",
    )
    p.add_argument("--ipc-host", action="store_true", help="share the host's IPC namespace instead")
    add_run_flags(p)
    if compose:
        p.add_argument(
            "--output", type=Path, default=Path("compose.yaml"), help="default: %(default)s"
        )
        p.add_argument("--force", action="store_true", help="replace an existing --output file")
    else:
        p.add_argument("--name", help="container name (default: bakery-run-<random>)")
        p.add_argument(
            "--timeout",
            type=argtypes.seconds(allow_zero=False),
            help="stop and remove the container after SECONDS",
        )
        p.add_argument("--dry-run", action="store_true", help="check and print, start nothing")
    p.add_argument("command", nargs="*", help="after --: the command to run in the container")


def plan_slim(args: argparse.Namespace, default_command: tuple[str, ...] = ()) -> SlimPlan:
    """Resolve the selection and the host environment and run every check that needs no docker."""
    slim = args.slim or "slim" in _split(args.flavour)
    if slim and args.host_env is None:
        raise UsageError(
            "a slim image needs --host-env PATH", fix="name the host environment that holds torch"
        )
    if args.host_env is not None and not slim:
        raise UsageError("--host-env is for slim images", fix="add --slim")
    host_env = inspect_host_env(args.host_env) if slim else None
    v = choose_variant(_variants(args, "slim" if slim else "full"), host_env)
    image = f"{args.repository or v.project.repository}:{v.tag}"
    problems = env_problems(host_env, v) if host_env is not None else []
    if host_env is not None and problems:  # before device access: the env's faults come first
        raise refuse(host_env, image, problems)
    gpu, gpu_env = select_gpus(device_access(v), args.gpus)
    extra_env = MappingProxyType({**gpu_env, **parse_env_flags(args.env)})
    user = container_user(args.user)
    if host_env is not None:
        guard_host_env(host_env, v, image, user, gpu)
    workspace = args.workspace.expanduser().resolve()
    if not workspace.is_dir():
        raise UsageError(f"--workspace {args.workspace} is not a folder")
    command = tuple(args.command) or default_command
    name = getattr(args, "name", None) or f"bakery-run-{uuid.uuid4().hex[:12]}"
    return SlimPlan(
        v, image, host_env, workspace, user, command, gpu, name, extra_env,
        args.shm_size, args.ipc_host,
    )  # fmt: skip


def guard_host_env(
    host_env: HostEnv, v: Variant, image: str, user: HostUser, gpu: GpuAccess
) -> None:
    """GuardError unless `host_env` works in `v`'s image for `user` (run, compose and up)."""
    problems = env_problems(host_env, v)
    if problems:
        raise refuse(host_env, image, problems)
    gids = [user.gid, *(int(g) for g in gpu.group_add)]
    denied = unreadable_for(paths_to_read(host_env), user.uid, gids)
    if denied:
        who = user_text(user)
        raise refuse(host_env, image, [f"the container user {who} cannot read {p}" for p in denied])


def _split(values: Sequence[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _variants(args: argparse.Namespace, flavour: str) -> list[Variant]:
    """The selection flags' variants of one flavour; no --target means the host's accelerator."""
    from bakery.cli import selection_from_args  # noqa: PLC0415 - avoids an import cycle

    selection = replace(selection_from_args(args), flavours=(flavour,))
    if not selection.targets and not selection.variants:
        target, reason = detect_host_target()
        err_console().print(f"no --target given: using [bold]{target}[/] ({reason})")
        selection = replace(selection, targets=(target,))
    return select_variants(load_matrix(args.matrix), selection)


def choose_variant(variants: Sequence[Variant], env: HostEnv | None) -> Variant:
    """The one selected variant; of several slim ones, the host env's Python and torch decide.

    Slim images carry no torch, so when the env's torch names no variant the newest one for its
    Python serves (the guards then check the build).
    """
    if len(variants) == 1:
        return variants[0]
    ambiguous = UsageError(
        f"the selection matches {len(variants)} variants ({', '.join(v.id for v in variants)})",
        fix="narrow it to one with --target, --python, --torch or --variant",
    )
    if env is None or len({v.target for v in variants}) > 1:
        raise ambiguous
    same_python = [v for v in variants if v.python == env.python]
    pool = same_python or list(variants)  # none: the guards say which Pythons there are
    torch = env.torch.dist.release if env.torch is not None else ""
    same_torch = [v for v in pool if v.torch == torch]
    return max(same_torch or pool, key=lambda v: (Version(v.torch), python_key(v.python)))


def check_image(plan: SlimPlan) -> None:
    """The image exists, and the host environment's compiled code runs on its glibc."""
    info = engine.inspect_image(plan.image)
    if info is None:
        raise UsageError(
            f"image {plan.image} is not built",
            fix=f"build it with `python build.py --variant {plan.variant.id}`",
        )
    if plan.host_env is None:
        return
    have = image_glibc(plan.image, info.labels)
    problems = glibc_problems(glibc_needs(plan.host_env.site_packages), have)
    if problems:
        raise refuse(plan.host_env, plan.image, problems)


def describe_plan(plan: SlimPlan) -> list[str]:
    lines = [f"{plan.variant.id}: {plan.image} as {user_text(plan.user)}"]
    env = plan.host_env
    if env is not None and env.torch is not None:
        lines.append(
            f"  host env {env.root} (Python {env.python}, torch {env.torch.dist.version}) -> "
            f"{HOST_ENV_MOUNT} read-only, PYTHONPATH={env.container_site_packages}"
        )
    lines.append(f"  workspace {plan.workspace} -> {WORKSPACE_MOUNT}")
    gpu = plan.gpu
    flags = [
        *gpu.devices,
        *(f"group {g}" for g in gpu.group_add),
        *([f"gpus {gpu.gpus}"] if gpu.gpus else []),
    ]
    lines.append(f"  devices: {', '.join(flags) or 'none (cpu)'}")
    return lines


# ---------------------------------------------------------------------------------------------
# Commands


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
    selection: argparse.ArgumentParser,
) -> None:
    """Add `run` and `compose`."""
    run = sub.add_parser(
        "run",
        parents=[common, selection],
        help="start an image (slim: with the host's torch environment)",
        description=RUN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(run, compose=False)
    run.set_defaults(handler=cmd_run)
    compose = sub.add_parser(
        "compose",
        parents=[common, selection],
        help="write a compose.yaml that starts an image the way `run` does",
        description=COMPOSE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(compose, compose=True)
    compose.set_defaults(handler=cmd_compose)


def container_spec(plan: SlimPlan) -> engine.ContainerSpec:
    """The engine's ContainerSpec for `plan`."""
    return engine.ContainerSpec(
        name=plan.name,
        image=plan.image,
        command=plan.command,
        user=user_text(plan.user),
        workdir=WORKSPACE_MOUNT,
        env=plan.environment(),
        volumes=plan.volumes(),
        devices=plan.gpu.devices,
        group_add=plan.gpu.group_add,
        gpus=plan.gpu.gpus,
        security_options=plan.gpu.security_options,
        ipc="host" if plan.ipc_host else None,
        shm_size=None if plan.ipc_host else plan.shm_size,
    )


def cmd_run(args: argparse.Namespace) -> int:
    plan = plan_slim(args)
    console = err_console()
    if args.dry_run:
        for line in describe_plan(plan):
            console.print(line)
        console.print(" ".join(engine.foreground_command(container_spec(plan), tty=False)))
        console.print("dry run: the image and its glibc were not checked, nothing was started")
        return EXIT_OK
    check_image(plan)
    if engine.inspect_container(plan.name) is not None:
        raise UsageError(
            f"a container named {plan.name} already exists",
            "run starts a new container and never removes or reuses one it did not create",
            "choose another --name, or leave --name out",
        )
    for line in describe_plan(plan):
        console.print(line)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    return engine.run_foreground(container_spec(plan), tty=tty, timeout=args.timeout)


def cmd_compose(args: argparse.Namespace) -> int:
    plan = plan_slim(args, default_command=COMPOSE_COMMAND)
    refuse_existing(args.output, force=args.force)  # before any docker call
    check_image(plan)
    text = render_compose(plan, args.output)
    write_checked(args.output, text, force=args.force)
    console = err_console()
    for line in describe_plan(plan):
        console.print(line)
    console.print(
        f"wrote {args.output}: `docker compose -f {args.output} up` runs {' '.join(plan.command)}"
    )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# compose.yaml


def compose_document(plan: SlimPlan) -> dict[str, Any]:
    service: dict[str, Any] = {
        "image": plan.image,
        "user": user_text(plan.user),
        "working_dir": WORKSPACE_MOUNT,
        "environment": plan.environment(),
        "volumes": [
            {
                "type": "bind",
                "source": str(src),
                "target": dst,
                "read_only": mode == "ro",
                "bind": {"create_host_path": False},  # a missing folder is an error, not created
            }
            for src, dst, mode in plan.volumes()
        ],
    }
    if plan.command:
        service["command"] = list(plan.command)
    gpu = plan.gpu
    if gpu.devices:
        service["devices"] = list(gpu.devices)
    if gpu.group_add:
        service["group_add"] = list(gpu.group_add)
    if gpu.security_options:
        service["security_opt"] = list(gpu.security_options)
    if plan.ipc_host:
        service["ipc"] = "host"
    else:
        service["shm_size"] = plan.shm_size
    if gpu.gpus:
        service["deploy"] = {"resources": {"reservations": {"devices": [_nvidia_devices(gpu)]}}}
    name = re.sub(r"[^a-z0-9_-]", "-", f"bakery-{plan.variant.id}".lower())
    return {"name": name, "services": {COMPOSE_SERVICE: service}}


def _nvidia_devices(gpu: GpuAccess) -> dict[str, Any]:
    """compose's device reservation: all GPUs, or the ones --gpus named (device_ids)."""
    spec: dict[str, Any] = {"driver": "nvidia", "capabilities": ["gpu"]}
    ids = (gpu.gpus or "").strip('"').removeprefix("device=")
    if ids and ids != "all":
        spec["device_ids"] = ids.split(",")
    else:
        spec["count"] = "all"
    return spec


def render_compose(plan: SlimPlan, output: Path) -> str:
    import yaml  # type: ignore[import-untyped]  # noqa: PLC0415 - no stubs installed; only `compose` needs it

    env = plan.host_env
    header = [
        f"# Written by `python build.py compose` for {plan.variant.id}; keep it or re-run that.",
    ]
    if env is not None and env.torch is not None:
        header.append(
            f"# Checked then: {env.root} is Python {env.python} with torch {env.torch.dist.version}; "
            "Compose does not re-check it."
        )
    header.append(f"#   docker compose -f {output.name} up          # runs the command below")
    header.append(f"#   docker compose -f {output.name} run --rm {COMPOSE_SERVICE} COMMAND")
    comments = "".join(f"{_one_line(line)}\n" for line in header)
    body: str = yaml.safe_dump(
        compose_document(plan), sort_keys=False, default_flow_style=False, allow_unicode=True
    )
    return comments + body


def _one_line(comment: str) -> str:
    """A YAML comment stays one comment whatever a path holds."""
    return comment.replace("\r", "\\r").replace("\n", "\\n")


def write_checked(target: Path, text: str, *, force: bool = False) -> None:
    """Write `text` next to `target`, have Compose read it, and only then give it the name.

    An existing file is replaced only with `force`; the no-clobber commit is a hard link, so a
    file that appears meanwhile is not replaced either.
    """
    target = refuse_existing(target, force=force)
    with pending_file(target) as pending:
        pending.write(text.encode("utf-8"))
        engine.compose_config(pending.temp)
        try:
            pending.commit(overwrite=force)
        except FileExistsError:
            raise UsageError(*_exists_problem(target)) from None


def refuse_existing(target: Path, *, force: bool) -> Path:
    """The absolute output path; UsageError if it is a folder, or exists and not `force`."""
    target = target.expanduser().absolute()
    if target.is_dir():
        raise UsageError(
            f"--output {target} is a folder", fix="give a file name, e.g. compose.yaml"
        )
    if not force and (target.exists() or target.is_symlink()):
        raise UsageError(*_exists_problem(target))
    return target


def _exists_problem(target: Path) -> tuple[str, str, str]:
    return (
        f"{target} already exists",
        "compose never replaces a file without being asked",
        "pass --force to replace it, or --output another file",
    )
