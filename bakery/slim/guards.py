"""Guards: everything that makes a host environment unusable in a variant's image, each
reason with its fix, refused together in one error.
"""

from __future__ import annotations

from collections.abc import Sequence

from bakery.compat import expected_torchvision
from bakery.errors import GuardError
from bakery.host import GpuAccess, HostUser
from bakery.matrix import Variant
from bakery.slim.access import (
    paths_to_read,
    unreadable_for,
    user_text,
)
from bakery.slim.hostenv import (
    Dist,
    HostEnv,
    TorchInfo,
    find_dist,
)


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
