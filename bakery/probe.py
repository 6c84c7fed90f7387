#!/usr/bin/env python3
"""bakery-probe: what torch build is here, which GPUs it sees, and why not.

Shipped inside every image as /usr/local/bin/bakery-probe (stdlib + torch only; no bakery
imports, Python >= 3.10). Two commands:

  bakery-probe [--expect rocm|cuda|cpu]   print a JSON report with a verdict and a hint
  bakery-probe guard --torch 2.9.1 ...    exit 1, naming what replaced what, if the installed
                                          torch stack is not the one the variant asked for
                                          (run as a build step after every pip install)

Verdicts: ok, no-gpu, permission-denied, driver-missing, arch-not-in-wheel, wrong-torch-build.
"""

from __future__ import annotations

import argparse
import glob
import grp
import importlib
import importlib.metadata
import json
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENV_KEYS = (
    "HIP_VISIBLE_DEVICES",
    "ROCR_VISIBLE_DEVICES",
    "HSA_OVERRIDE_GFX_VERSION",
    "PYTORCH_ROCM_ARCH",
    "TORCH_ROCM_AOTRITON_ENABLE_EXPERIMENTAL",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "TORCH_CUDA_ARCH_LIST",
    "BAKERY_ACCELERATOR",
)
NODE_PATTERNS = {
    "rocm": ("/dev/kfd", "/dev/dri/renderD*"),
    "cuda": ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia[0-9]*"),
    "cpu": (),
}


def split_version(text: str) -> tuple[str, str]:
    """'2.7.1+rocm6.3' -> ('2.7.1', 'rocm6.3')."""
    base, _, local = text.partition("+")
    return base, local


def torch_build() -> dict[str, Any]:
    try:
        torch = importlib.import_module("torch")
    except Exception as exc:
        return {"version": None, "error": f"{type(exc).__name__}: {exc}"}
    base, local = split_version(str(torch.__version__))
    try:
        arch_list = list(torch.cuda.get_arch_list())
    except Exception:
        arch_list = []
    return {
        "version": str(torch.__version__),
        "base": base,
        "local": local,
        "cuda": getattr(torch.version, "cuda", None),
        "hip": getattr(torch.version, "hip", None),
        "arch_list": arch_list,
        "file": getattr(torch, "__file__", None),
        "error": None,
    }


def companion_build(name: str) -> dict[str, Any]:
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return {"version": None, "error": "not installed"}
    try:
        importlib.import_module(name)
        error = None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    return {"version": version, "error": error}


def node_access(path: str) -> dict[str, Any]:
    info: dict[str, Any] = {"path": path}
    try:
        st = os.stat(path)
    except OSError as exc:
        return {**info, "exists": False, "error": exc.strerror}
    info.update(
        exists=True,
        char_device=stat.S_ISCHR(st.st_mode),
        mode=oct(stat.S_IMODE(st.st_mode)),
        uid=st.st_uid,
        gid=st.st_gid,
        group=_group_name(st.st_gid),
    )
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as exc:
        info.update(openable=False, error=exc.strerror, via=None)
        return info
    os.close(fd)
    info.update(openable=True, error=None, via=_access_via(st))
    return info


def _group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return None


def _access_via(st: os.stat_result) -> str:
    if os.geteuid() == 0:
        return "root"
    if st.st_uid == os.geteuid():
        return "owner"
    if st.st_gid == os.getegid() or st.st_gid in os.getgroups():
        return f"group {st.st_gid}"
    return "other"


def device_nodes(accelerator: str) -> list[dict[str, Any]]:
    paths: list[str] = []
    for pattern in NODE_PATTERNS.get(accelerator, ()):
        paths.extend(sorted(glob.glob(pattern)) if "*" in pattern else [pattern])
    return [node_access(p) for p in paths]


def visible_devices(build: dict[str, Any]) -> dict[str, Any]:
    if build.get("error"):
        return {"count": 0, "names": [], "archs": [], "error": build["error"]}
    torch = importlib.import_module("torch")
    try:
        available = bool(torch.cuda.is_available())
        count = int(torch.cuda.device_count()) if available else 0
    except Exception as exc:
        return {"count": 0, "names": [], "archs": [], "error": str(exc)}
    names, archs = [], []
    for i in range(count):
        props = torch.cuda.get_device_properties(i)
        names.append(str(props.name))
        arch = getattr(props, "gcnArchName", "") or f"sm_{props.major}{props.minor}"
        archs.append(str(arch).split(":")[0])
    return {"count": count, "names": names, "archs": archs, "error": None}


def expected_accelerator(cli_value: str | None) -> str:
    return cli_value or os.environ.get("BAKERY_ACCELERATOR", "") or "cpu"


def findings(
    accelerator: str,
    build: dict[str, Any],
    nodes: list[dict[str, Any]],
    devices: dict[str, Any],
) -> list[tuple[str, str]]:
    """Every problem found, most fundamental first: (verdict, hint)."""
    found: list[tuple[str, str]] = []
    wrong = _wrong_build(accelerator, build)
    if wrong:
        found.append(("wrong-torch-build", wrong))
    found += [
        ("permission-denied", _denied_hint(n))
        for n in nodes
        if n["exists"] and not n.get("openable")
    ]
    if accelerator == "cpu" or found:
        return found
    if not any(n["exists"] for n in nodes):
        return [("no-gpu", _no_gpu_hint(accelerator))]
    if devices["count"] == 0:
        return [("driver-missing", _driver_hint(accelerator, devices))]
    for arch in dict.fromkeys(devices["archs"]):
        runs, advice = arch_runs(arch, build["arch_list"], os.environ)
        if not runs:
            found.append(("arch-not-in-wheel", _arch_hint(arch, build["arch_list"], advice)))
    return found


# ROCm: a wheel's code objects are per exact gfx target. The runtime can be told to treat a GPU
# as a sibling target of the same family (ROCm/ROCm#2353, #3059; AMD documents
# HSA_OVERRIDE_GFX_VERSION as an unsupported workaround). Families the override is known for:
# gfx name prefix -> (target loaded instead, override value).
HSA_OVERRIDE_FAMILIES = {
    "gfx103": ("gfx1030", "10.3.0"),  # RDNA2: gfx1031/1032/1034/1035/1036 -> gfx1030
    "gfx110": ("gfx1100", "11.0.0"),  # RDNA3: gfx1101/1102/1103 -> gfx1100
}


def arch_runs(device: str, arch_list: list[str], env: Mapping[str, str]) -> tuple[bool, str]:
    """Whether code in a wheel built for `arch_list` runs on `device`; else the fix ("" if none).

    NVIDIA (CUDA C programming guide, "Binary compatibility" and "PTX compatibility"): a cubin
    for sm_XY runs on any sm_XZ with Z >= Y (same major only); an arch-specific sm_XYa cubin
    only on sm_XY; PTX (compute_XY) is JIT-compiled on any device of compute capability >= XY.
    ROCm: exact gfx target, or a documented HSA_OVERRIDE_GFX_VERSION family.
    """
    if device in arch_list:
        return True, ""
    if device.startswith("sm_"):
        return _cuda_runs(device, arch_list), ""
    if device.startswith("gfx"):
        return _rocm_runs(device, arch_list, env)
    return False, ""


def _cuda_cc(name: str) -> tuple[int, int, str] | None:
    """'sm_89' -> (8, 9, ''), 'sm_120' -> (12, 0, ''), 'sm_90a' -> (9, 0, 'a')."""
    digits = name.split("_", 1)[-1]
    suffix = digits.lstrip("0123456789")
    digits = digits[: len(digits) - len(suffix)]
    if len(digits) < 2:
        return None
    return int(digits[:-1]), int(digits[-1]), suffix


def _cuda_runs(device: str, arch_list: list[str]) -> bool:
    dev = _cuda_cc(device)
    if dev is None:
        return False
    for entry in arch_list:
        cc = _cuda_cc(entry)
        if cc is None:
            continue
        if entry.startswith("compute_") and not cc[2] and cc[:2] <= dev[:2]:
            return True  # PTX JITs forward to any newer device
        if entry.startswith("sm_") and not cc[2] and cc[0] == dev[0] and cc[1] <= dev[1]:
            return True  # same-major cubin
    return False


def _rocm_runs(device: str, arch_list: list[str], env: Mapping[str, str]) -> tuple[bool, str]:
    family = HSA_OVERRIDE_FAMILIES.get(device[:-1])
    if family is None or family[0] not in arch_list:
        return False, ""
    value = family[1]
    if env.get("HSA_OVERRIDE_GFX_VERSION") == value:
        return True, ""
    return False, f"--env HSA_OVERRIDE_GFX_VERSION={value}"


def _arch_hint(arch: str, arch_list: list[str], advice: str) -> str:
    text = f"device architecture {arch} cannot run this torch build (compiled for {arch_list})"
    if advice:
        return f"{text}; the runtime can load a sibling target: start the container with {advice}"
    return f"{text}; use a torch build that lists {arch} (or an older target it can run)"


def verdict(
    accelerator: str,
    build: dict[str, Any],
    nodes: list[dict[str, Any]],
    devices: dict[str, Any],
) -> tuple[str, str]:
    found = findings(accelerator, build, nodes, devices)
    if found:
        return found[0]
    if accelerator == "cpu":
        return "ok", "CPU build: no GPU expected"
    return "ok", f"{devices['count']} device(s): {', '.join(devices['names'])}"


def _denied_hint(node: dict[str, Any]) -> str:
    return (
        f"{node['path']} is owned by group {node['gid']} ({node.get('group') or 'unnamed'}) "
        f"mode {node['mode']}; this user (uid {os.geteuid()}, groups {sorted(os.getgroups())}) "
        f"cannot open it: start the container with --group-add {node['gid']}"
    )


def _wrong_build(accelerator: str, build: dict[str, Any]) -> str:
    if build.get("error"):
        return f"torch does not import: {build['error']}"
    if accelerator == "rocm" and not build["hip"]:
        return f"torch {build['version']} is not a ROCm build (torch.version.hip is None)"
    if accelerator == "cuda" and not build["cuda"]:
        return f"torch {build['version']} is not a CUDA build (torch.version.cuda is None)"
    return ""


def _no_gpu_hint(accelerator: str) -> str:
    if accelerator == "rocm":
        return "no /dev/kfd or /dev/dri/renderD* in the container: start it with --device /dev/kfd --device /dev/dri and --group-add for their groups"
    return "no /dev/nvidia* in the container: start it with --gpus all (NVIDIA container toolkit)"


def _driver_hint(accelerator: str, devices: dict[str, Any]) -> str:
    detail = f" ({devices['error']})" if devices.get("error") else ""
    if accelerator == "rocm":
        return f"device nodes open but torch sees no GPU{detail}: check the host's amdgpu driver (ROCm 6.3 KFD) and HIP_VISIBLE_DEVICES"
    return f"device nodes open but torch sees no GPU{detail}: check the host's NVIDIA driver (>= 570 for CUDA 12.8) and the container toolkit"


def probe(accelerator: str) -> dict[str, Any]:
    build = torch_build()
    nodes = device_nodes(accelerator)
    devices = (
        visible_devices(build)
        if accelerator != "cpu"
        else {"count": 0, "names": [], "archs": [], "error": None}
    )
    name, hint = verdict(accelerator, build, nodes, devices)
    problems = [{"verdict": v, "hint": h} for v, h in findings(accelerator, build, nodes, devices)]
    return {
        "problems": problems,
        "expected": {"accelerator": accelerator},
        "python": ".".join(str(p) for p in sys.version_info[:3]),
        "torch": build,
        "companions": {n: companion_build(n) for n in ("torchvision", "torchaudio")},
        "devices": devices,
        "nodes": nodes,
        "user": {"uid": os.geteuid(), "gid": os.getegid(), "groups": sorted(os.getgroups())},
        "env": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
        "verdict": name,
        "hint": hint,
        "advice": advice_flags(build, devices),
    }


def advice_flags(build: dict[str, Any], devices: dict[str, Any]) -> list[str]:
    """Flags to paste into `build.py up/run/compose` that make this build run on these GPUs."""
    flags = [arch_runs(a, build.get("arch_list") or [], os.environ)[1] for a in devices["archs"]]
    return [f for f in dict.fromkeys(flags) if f]


@dataclass(frozen=True)
class GuardSpec:
    """The variant's torch stack, as `bakery-probe guard` is told it at build time."""

    torch: str
    accelerator: str  # rocm | cuda | cpu
    accelerator_version: str = ""
    local: str = ""  # the wheels' local label: rocm6.3, cu128, cpu
    source: str = "index"  # index | pypi | local
    companions: tuple[str, ...] = ()  # NAME=VERSION


def guard(spec: GuardSpec) -> list[str]:
    """Every way the installed stack differs from the variant (empty: all good).

    Wheels from the accelerator's index carry the local label (+rocm6.3, +cu128, +cpu) in both
    their metadata and torch.__version__. PyPI's wheels of the same build have none in their
    metadata but may still report it in __version__ (PyPI's torch 2.9.1 says 2.9.1+cu128), so
    with --source pypi either spelling is accepted and torch.version.cuda decides.
    """
    build = torch_build()
    if build.get("error"):
        return [f"torch does not import: {build['error']}"]
    locals_ok = {"", spec.local} if spec.source == "pypi" else {spec.local}
    problems = []
    if build["base"] != spec.torch or build["local"] not in locals_ok:
        problems.append(
            f"torch {_spell(spec.torch, locals_ok)} was expected but torch {build['version']} is "
            "installed (replaced by a later pip step, or taken from the wrong index)"
        )
    problems += _guard_runtime(spec, build)
    for companion in spec.companions:
        name, _, version = companion.partition("=")
        problems += _guard_companion(name, version, locals_ok, build)
    return problems


def _spell(version: str, locals_ok: set[str]) -> str:
    return " or ".join(sorted(f"{version}+{loc}" if loc else version for loc in locals_ok))


def _guard_companion(
    name: str, version: str, locals_ok: set[str], build: dict[str, Any]
) -> list[str]:
    found = companion_build(name)
    base, local = split_version(found["version"] or "")
    if base != version or local not in locals_ok:
        return [
            f"{name} {_spell(version, locals_ok)} was expected but {found['version']} is installed"
        ]
    if found["error"]:
        return [
            f"{name} {found['version']} does not import next to torch {build['version']}: {found['error']}"
        ]
    return []


def _guard_runtime(spec: GuardSpec, build: dict[str, Any]) -> list[str]:
    if spec.accelerator == "rocm":
        hip = build["hip"] or ""
        if not hip.startswith(spec.accelerator_version):
            return [
                f"torch.version.hip is {build['hip']!r}, expected ROCm {spec.accelerator_version}"
            ]
    elif spec.accelerator == "cuda":
        if build["cuda"] != spec.accelerator_version or build["hip"]:
            return [
                f"torch.version.cuda is {build['cuda']!r}, expected CUDA {spec.accelerator_version}"
            ]
    elif build["cuda"] or build["hip"]:
        return [
            f"a CPU build was expected but torch reports cuda={build['cuda']!r} hip={build['hip']!r}"
        ]
    return []


@dataclass(frozen=True)
class ProbeCommand:
    """The command line, parsed: `guard` with the variant's stack, or the probe itself."""

    expect: str | None = None  # probe: the accelerator the image is for
    guard: GuardSpec | None = None  # guard: the stack to check


def parse_args(argv: list[str]) -> ProbeCommand:
    parser = argparse.ArgumentParser(
        prog="bakery-probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--expect",
        choices=("rocm", "cuda", "cpu"),
        help="accelerator the image is for (default: $BAKERY_ACCELERATOR)",
    )
    sub = parser.add_subparsers(dest="command")
    g = sub.add_parser("guard", help="fail if the torch stack is not the variant's")
    g.add_argument("--torch", required=True)
    g.add_argument("--accelerator", required=True, choices=("rocm", "cuda", "cpu"))
    g.add_argument("--accelerator-version", default="")
    g.add_argument("--local", default="")
    g.add_argument("--source", default="index", choices=("index", "pypi", "local"))
    g.add_argument("--companion", action="append", default=[], metavar="NAME=VERSION")
    args = parser.parse_args(argv)
    if args.command != "guard":
        return ProbeCommand(expect=args.expect)
    spec = GuardSpec(
        args.torch,
        args.accelerator,
        args.accelerator_version,
        args.local,
        args.source,
        tuple(args.companion),
    )
    return ProbeCommand(expect=args.expect, guard=spec)


def main(argv: list[str] | None = None) -> int:
    command = parse_args(sys.argv[1:] if argv is None else argv)
    if command.guard is not None:
        problems = guard(command.guard)
        for problem in problems:
            print(f"bakery-probe guard: {problem}", file=sys.stderr)
        if not problems:
            print(f"bakery-probe guard: torch stack is the variant's ({torch_build()['version']})")
        return 1 if problems else 0
    report = probe(expected_accelerator(command.expect))
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0 if report["verdict"] in ("ok", "no-gpu") else 1


if __name__ == "__main__":
    sys.exit(main())
