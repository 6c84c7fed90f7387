"""The read-back: run the built image once and refuse to tag it if its stack is not the variant's."""

from __future__ import annotations

from pathlib import Path

from bakery import engine, verified
from bakery.build.plan import BuildStep
from bakery.errors import BakeryError, DockerError, GuardError


def as_guard_error(step: BuildStep, exc: DockerError) -> BakeryError:
    """A failed `bakery-probe guard` build step is a guard failure (exit 5), not a docker one."""
    lines = [line.strip() for line in exc.stderr_tail.splitlines() if "bakery-probe guard:" in line]
    if "bakery-probe guard" not in exc.what or not lines:
        return exc
    found = "; ".join(
        dict.fromkeys(line.split("bakery-probe guard:", 1)[1].strip() for line in lines)
    )
    return GuardError(
        f"{step.variant.id}: the torch guard stopped the build — the installed torch stack is not the variant's",
        found,
        f"a later pip step or the wrong index replaced it; pin it in the stack or fix the sources (log: {step.log_path})",
    )


REUSED = "read-back reused: only the code layers are new over layers already verified"


def verify_once(
    step: BuildStep, outcome: engine.BuildOutcome, info: engine.ImageInfo | None, root: Path
) -> bool:
    """Read the stack back unless only code steps ran over layers already read back and found
    right (bakery.verified); True when it ran."""
    command = verify_command(step)
    key = verified.verification_key(step.variant.id, command, info) if info else ""
    if info and verified.reusable(verified.load_records(root), key, info.layers, outcome.steps_run):
        return False
    verify_image(step, outcome.image_id)
    if info:
        verified.remember(root, key, info.layers)
    return True


def verify_command(step: BuildStep) -> list[str]:
    """The read-back: the torch guard (full) or the Python version (slim), run in the image."""
    v = step.variant
    if v.flavour == "full":
        return [
            "bakery-probe", "guard", "--torch", v.torch, "--accelerator", v.accelerator,
            "--accelerator-version", v.index.version, "--local", v.index.local,
            "--source", step.torch_source,
            *(f"--companion={n}={ver}" for n, ver in v.companions),
        ]  # fmt: skip
    return [
        "python",
        "-c",
        f"import sys; sys.exit(sys.version_info[:2] != {tuple(int(p) for p in v.python.split('.'))})",
    ]


def verify_image(step: BuildStep, image_id: str) -> None:
    """Read the versions back from the built image; refuse to tag on any difference."""
    v = step.variant
    command = verify_command(step)
    # no network: the read-back needs none, and a builder host may have no bridge at all
    result = engine.run_container(image_id, command, timeout=300, network="none")
    if result.return_code != 0:
        raise GuardError(
            f"{step.image} was built but not tagged: its contents differ from variant {v.id}",
            (result.stderr or result.stdout).strip()[-800:],
            f"see the build log {step.log_path}; fix the pins or sources and rebuild",
        )
