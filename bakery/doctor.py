"""`python build.py doctor`: check the host, with a fix for each failure.

Each check gives one row: ok, warn (worth knowing, not blocking), fail (bakery or the GPU will
not work until it is fixed) or skip (does not apply here, e.g. NVIDIA checks without an NVIDIA
GPU). A machine without a GPU is a warning, not a failure: CI machines have none.

Exit codes: 0 no check failed (warnings and skips allowed), 1 at least one failed,
2 bad command line. `--json` prints a list of {check, status, detail, fix} on stdout.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from bakery import engine
from bakery.errors import EXIT_FAILED, EXIT_OK, BakeryError
from bakery.host import (
    HostUser,
    detect_host_target,
    device_gids,
    find_ca_bundle,
    gpu_access,
    invoking_user,
)
from bakery.matrix import Selection, Variant, load_selection
from bakery.ui import out_console

if TYPE_CHECKING:
    from bakery.build import BuildOptions


OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
GIB = 1024**3
DISK_FAIL_GIB = 10  # not even one CUDA image (about 7 GB) and its build cache fit
DISK_WARN_GIB = 40  # a ROCm image alone is tens of GB
MIN_SERVER = (23, 0)  # BuildKit by default, buildx-era engine
NVIDIA_TOOLKIT_FIX = (
    "install nvidia-container-toolkit, then `sudo nvidia-ctk runtime configure --runtime=docker` "
    "and restart the Docker daemon"
)
PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy")
CA_ENV = ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")


@dataclass(frozen=True)
class Check:
    check: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Host:
    """What the checks look at, gathered once (tests build one by hand)."""

    dev: Path  # device root: /dev, or simulated nodes in tests
    env: Mapping[str, str]
    user: HostUser
    groups: frozenset[int]  # the user's groups on the host


def user_groups(user: HostUser) -> frozenset[int]:
    try:
        return frozenset(os.getgrouplist(user.name, user.gid))
    except OSError:  # no account with that name here
        return frozenset({user.gid})


# ---------------------------------------------------------------------------------------------
# Docker


def check_daemon() -> tuple[Check, engine.DockerInfo | None]:
    try:
        info = engine.docker_info(timeout=20)
    except BakeryError as exc:
        return Check("docker daemon", FAIL, exc.what, exc.fix or engine.INSTALL_FIX), None
    version = engine.parse_version(info.server_version)
    detail = (
        f"Docker {info.server_version} (cgroup v{info.cgroup_version}, {info.cgroup_driver} driver)"
    )
    if version and version < MIN_SERVER:
        return Check("docker daemon", WARN, f"{detail}: older than 23.0", engine.INSTALL_FIX), info
    return Check("docker daemon", OK, detail), info


def check_buildx(info: engine.DockerInfo | None) -> Check:
    if info is None:
        return Check("buildx", SKIP, "needs the Docker daemon")
    try:
        found = engine.check_engine()
    except BakeryError as exc:
        return Check("buildx", FAIL, exc.render(), exc.fix)
    return Check("buildx", OK, f"buildx {found.buildx_version} (>= 0.13 needed)")


def check_disk(info: engine.DockerInfo | None) -> Check:
    where = (
        Path(info.root_dir)
        if info and info.root_dir and Path(info.root_dir).exists()
        else Path.cwd()
    )
    free = shutil.disk_usage(where).free / GIB
    detail = f"{free:.0f} GiB free on {where}"
    fix = "free space (`docker system prune`, `docker builder prune`) or move Docker's data-root"
    if free < DISK_FAIL_GIB:
        return Check("free disk", FAIL, f"{detail}: a CUDA image alone is about 7 GB", fix)
    if free < DISK_WARN_GIB:
        return Check("free disk", WARN, f"{detail}: ROCm images are tens of GB", fix)
    return Check("free disk", OK, detail)


# ---------------------------------------------------------------------------------------------
# GPUs


def has_nvidia(dev: Path) -> bool:
    return (dev / "nvidiactl").exists() or any(dev.glob("nvidia[0-9]*"))


def check_gpu(host: Host) -> Check:
    found = []
    if (host.dev / "kfd").exists():
        found.append(f"AMD ({host.dev}/kfd)")
    if has_nvidia(host.dev):
        found.append(f"NVIDIA ({host.dev}/nvidia*)")
    if found:
        return Check("gpu", OK, ", ".join(found))
    return Check(
        "gpu",
        WARN,
        f"no GPU: no {host.dev}/kfd or {host.dev}/nvidia* on this host; images run on the CPU only",
        "expected on CI and CPU machines; on a GPU server load the amdgpu or nvidia driver",
    )


def check_rocm_devices(host: Host) -> Check:
    access = gpu_access("rocm", host.dev)
    if access.missing:
        return Check("rocm devices", SKIP, f"no AMD GPU: {access.missing}")
    nodes = [host.dev / "kfd", *sorted((host.dev / "dri").glob("renderD*"))]
    described = ", ".join(f"{n.name} (gid {n.stat().st_gid})" for n in nodes if n.exists())
    gids = {int(g) for g in device_gids(nodes)}
    lacking = sorted(gids - host.groups)
    detail = f"{described}; dev containers get --group-add {' '.join(access.group_add) or '(none)'}"
    if host.user.uid == 0 or not lacking:
        return Check("rocm devices", OK, detail)
    names = ",".join(_group_name(g) for g in lacking)
    return Check(
        "rocm devices",
        WARN,
        f"{detail}; {host.user.name} is not in group(s) {names}: host tools (rocminfo) cannot open the GPU",
        f"sudo usermod -aG {names} {host.user.name}, then log in again (bakery's containers do not need it)",
    )


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_nvidia_runtime(host: Host, info: engine.DockerInfo | None) -> Check:
    if not has_nvidia(host.dev):
        return Check("nvidia runtime", SKIP, "no NVIDIA GPU on this host")
    if info is None:
        return Check("nvidia runtime", SKIP, "needs the Docker daemon")
    if "nvidia" in info.runtimes:
        return Check("nvidia runtime", OK, f"registered (runtimes: {', '.join(info.runtimes)})")
    return Check(
        "nvidia runtime",
        FAIL,
        f"an NVIDIA GPU is here but `docker info` lists no nvidia runtime ({', '.join(info.runtimes)})",
        NVIDIA_TOOLKIT_FIX,
    )


def check_nvidia_works(host: Host, info: engine.DockerInfo | None, images: Sequence[str]) -> Check:
    if not has_nvidia(host.dev):
        return Check("nvidia in a container", SKIP, "no NVIDIA GPU on this host")
    if info is None or "nvidia" not in info.runtimes:
        return Check("nvidia in a container", SKIP, "needs the nvidia runtime (see above)")
    if not images:
        return Check(
            "nvidia in a container", SKIP, "no local image to try it with (build one first)"
        )
    try:
        result = engine.run_container(
            images[0], ["true"], network="none", timeout=120, extra={"gpus": "all"}
        )
    except BakeryError as exc:
        return Check("nvidia in a container", FAIL, exc.render(), NVIDIA_TOOLKIT_FIX)
    if result.return_code != 0:
        return Check(
            "nvidia in a container",
            FAIL,
            f"`docker run --gpus all` exited {result.return_code}",
            NVIDIA_TOOLKIT_FIX,
        )
    return Check("nvidia in a container", OK, f"`docker run --gpus all {images[0]} true` works")


def check_cgroup(host: Host, info: engine.DockerInfo | None) -> Check:
    """NVIDIA + systemd cgroup driver: containers lose the GPU after `systemctl daemon-reload`
    unless /dev/char links exist (NVIDIA/nvidia-container-toolkit#48); rootless Docker on
    cgroup v2 needs `no-cgroups = true` in the toolkit's config."""
    if info is None:
        return Check("cgroups", SKIP, "needs the Docker daemon")
    detail = f"cgroup v{info.cgroup_version or '?'}, {info.cgroup_driver or '?'} driver"
    if not has_nvidia(host.dev):
        return Check("cgroups", SKIP, f"{detail}; notes apply to NVIDIA GPUs only")
    rootless = any("rootless" in option for option in info.security_options)
    if rootless and info.cgroup_version == "2":
        return Check(
            "cgroups",
            WARN,
            f"{detail}, rootless Docker",
            "set `no-cgroups = true` in /etc/nvidia-container-runtime/config.toml and pass the /dev/nvidia* devices explicitly",
        )
    if info.cgroup_driver == "systemd" and not _nvidia_char_links(host.dev):
        return Check(
            "cgroups",
            WARN,
            f"{detail}; no /dev/char links to the NVIDIA devices: long-lived containers lose the GPU after `systemctl daemon-reload` (Failed to initialize NVML: Unknown Error)",
            "sudo nvidia-ctk system create-dev-char-symlinks --create-all (NVIDIA/nvidia-container-toolkit#48)",
        )
    return Check("cgroups", OK, detail)


def _nvidia_char_links(dev: Path) -> bool:
    folder = dev / "char"
    if not folder.is_dir():
        return False
    return any(
        link.resolve().name.startswith("nvidia") for link in folder.iterdir() if link.is_symlink()
    )


# ---------------------------------------------------------------------------------------------
# Network settings and images


def mask(url: str) -> str:
    """A proxy URL without its password."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def check_proxy(host: Host, info: engine.DockerInfo | None) -> Check:
    mine = {key: host.env[key] for key in PROXY_ENV if host.env.get(key)}
    shown = ", ".join(f"{k}={mask(v)}" for k, v in mine.items()) or "none"
    if info is None:
        return Check("proxy", SKIP, f"host: {shown}; daemon: unknown (no daemon)")
    daemon = {k: v for k, v in (("HTTPS", info.https_proxy), ("HTTP", info.http_proxy)) if v}
    daemon_shown = ", ".join(f"{k}={mask(v)}" for k, v in daemon.items()) or "none"
    detail = f"host: {shown}; daemon: {daemon_shown}"
    if any("proxy" in k.lower() and "no_" not in k.lower() for k in mine) and not daemon:
        return Check(
            "proxy",
            WARN,
            f"{detail}: the daemon pulls images without your proxy",
            "give dockerd HTTP(S)_PROXY (systemd drop-in, or `proxies` in /etc/docker/daemon.json)",
        )
    return Check("proxy", OK, detail)


def check_ca(host: Host) -> Check:
    set_vars = {key: host.env[key] for key in CA_ENV if host.env.get(key)}
    if not set_vars:
        return Check(
            "ca bundle", OK, "none set: builds and containers use the images' own CA store"
        )
    missing = [f"{k}={v}" for k, v in set_vars.items() if not Path(v).is_file()]
    if missing:
        return Check(
            "ca bundle",
            FAIL,
            f"{', '.join(missing)}: no such file",
            "point the variable at an existing PEM bundle, or unset it",
        )
    shown = ", ".join(f"{k}={v}" for k, v in set_vars.items())
    return Check(
        "ca bundle", OK, f"{shown}: builds pass it as a BuildKit secret, dev containers mount it"
    )


def check_mirrors(info: engine.DockerInfo | None) -> Check:
    if info is None:
        return Check("registry mirrors", SKIP, "needs the Docker daemon")
    if info.registry_mirrors:
        return Check("registry mirrors", OK, ", ".join(info.registry_mirrors))
    return Check(
        "registry mirrors",
        OK,
        "none configured: pulls go to Docker Hub directly (with no registry reachable, build with --bootstrap-base or --base-map)",
    )


def check_images(
    variants: Sequence[Variant], repository: str, explicit: bool, info: engine.DockerInfo | None
) -> tuple[list[Check], list[str]]:
    """One row per selected variant; also the refs that exist. Missing ones fail only when
    the user selected them explicitly."""
    if info is None:
        return [Check("images", SKIP, "needs the Docker daemon")], []
    checks, built = [], []
    for v in variants:
        ref = v.ref(repository)
        image = engine.inspect_image(ref)
        if image is None:
            status = FAIL if explicit else WARN
            checks.append(
                Check(
                    f"image {v.id}",
                    status,
                    f"{ref} is not here",
                    f"python build.py --variant {v.id}",
                )
            )
            continue
        built.append(ref)
        checks.append(
            Check(f"image {v.id}", OK, f"{ref} ({image.id[7:19]}, {image.size / GIB:.1f} GiB)")
        )
    return checks, built


# ---------------------------------------------------------------------------------------------
# Running and printing


@dataclass(frozen=True)
class DoctorRequest:
    """What doctor looks at: the matrix's selected images (default: this host's target)."""

    matrix: Path = Path("matrix.toml")
    selection: Selection = field(default_factory=Selection)
    repository: str | None = None  # None: the matrix's
    dev_root: Path = Path("/dev")  # where device nodes are looked up (a test seam)


def this_host(dev_root: Path) -> Host:
    user = invoking_user()
    return Host(dev=dev_root, env=dict(os.environ), user=user, groups=user_groups(user))


def selected_images(request: DoctorRequest, host: Host) -> tuple[list[Variant], str, bool] | Check:
    """The variants to look for (explicit selection, or the host's target), or why not."""
    selection = request.selection
    explicit = not selection.empty
    if not request.matrix.is_file():
        return Check("images", SKIP, f"no {request.matrix} here (run doctor from the project root)")
    if not selection.targets and not selection.variants:
        selection = replace(selection, targets=(detect_host_target(host.dev)[0],))
    try:
        matrix, variants = load_selection(request.matrix, selection)
    except BakeryError as exc:
        return Check("images", FAIL, exc.render(), exc.fix)
    return variants, request.repository or matrix.project.repository, explicit


def check_buildable(
    variants: Sequence[Variant], options: BuildOptions | None = None
) -> list[Check]:
    """Per variant: can this host build it, and from which sources (the build plan's rules).
    Default options: the host's pip configuration and CA bundle, torch source auto."""
    from bakery import builder  # noqa: PLC0415 - heavy, used only here
    from bakery.pipsources import sources_from_host  # noqa: PLC0415

    if options is None:
        options = builder.BuildOptions(
            root=Path.cwd(), pip=sources_from_host(), ca_cert=find_ca_bundle(None)
        )
    return [_buildable(v, options) for v in variants]


def _buildable(v: Variant, options: BuildOptions) -> Check:
    from bakery import builder, interpreters, localwheels  # noqa: PLC0415

    name = f"buildable {v.id}"
    try:
        python = interpreters.check_interpreter_sources([v], "", options.ca_cert)
        source, reason = builder.choose_torch_source(v, options)
        if source == "local":
            localwheels.check_local_wheels([v], options.pip)
    except BakeryError as exc:
        # WARN, not FAIL: a host that cannot build a variant may still run it (pulled, loaded).
        detail = f"not buildable here: {exc.what}" + (f" — {exc.why}" if exc.why else "")
        return Check(name, WARN, detail, exc.fix)
    where = f" {options.pip.describe()}" if source == "local" else ""
    return Check(name, OK, f"torch from {source}{where} ({reason}); {python}")


def run_checks(request: DoctorRequest) -> list[Check]:
    host = this_host(request.dev_root)
    daemon, info = check_daemon()
    checks = [
        daemon,
        check_buildx(info),
        check_disk(info),
        check_gpu(host),
        check_rocm_devices(host),
    ]
    selected = selected_images(request, host)
    image_checks, built = (
        ([selected], []) if isinstance(selected, Check) else check_images(*selected, info)
    )
    checks += [
        check_nvidia_runtime(host, info),
        check_nvidia_works(host, info, built),
        check_cgroup(host, info),
    ]
    checks += [check_proxy(host, info), check_ca(host), check_mirrors(info)]
    if not isinstance(selected, Check):
        checks += check_buildable(selected[0])
    return checks + image_checks


def exit_code(checks: Iterable[Check]) -> int:
    return EXIT_FAILED if any(c.status == FAIL for c in checks) else EXIT_OK


_STYLE = {OK: "green", WARN: "yellow", FAIL: "bold red", SKIP: "dim"}


def print_checks(checks: Sequence[Check]) -> None:
    table = Table(title="bakery doctor")
    for column in ("check", "status", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for c in checks:
        table.add_row(c.check, f"[{_STYLE[c.status]}]{c.status}[/]", c.detail, c.fix)
    out_console().print(table)
