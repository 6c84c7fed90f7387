"""`python build.py run | compose`: the arguments as a `SlimRequest`, then plan, check and start
or write (see bakery.slim).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bakery.cli import argtypes
from bakery.cli.common import AddParser, Parents, add_command, add_run_flags, selection_of
from bakery.defaults import COMPOSE_COMMAND, DEFAULT_SHM, WORKSPACE_MOUNT
from bakery.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from bakery.slim.plan import SlimRequest

COMMANDS: tuple[str, ...] = ("run", "compose")


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


def register(add: AddParser, parents: Parents) -> None:
    """Add `run` and `compose`."""
    shared = [parents.common, parents.selection, parents.repository]
    run = add_command(
        add,
        "run",
        shared,
        "start an image (slim: with the host's torch environment)",
        RUN_DESCRIPTION,
    )
    add_arguments(run, compose=False)
    run.set_defaults(handler=cmd_run)
    compose = add_command(
        add,
        "compose",
        shared,
        "write a compose.yaml that starts an image the way `run` does",
        COMPOSE_DESCRIPTION,
    )
    add_arguments(compose, compose=True)
    compose.set_defaults(handler=cmd_compose)


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


def slim_request(args: argparse.Namespace) -> SlimRequest:
    from bakery.slim.plan import SlimRequest  # noqa: PLC0415 - lazy: --help imports no library

    return SlimRequest(
        matrix=args.matrix,
        selection=selection_of(args),
        slim=args.slim,
        host_env=args.host_env,
        repository=args.repository,
        workspace=args.workspace,
        user=args.user,
        gpus=args.gpus,
        env=tuple(args.env),
        command=tuple(args.command),
        name=getattr(args, "name", None),  # run only
        shm_size=args.shm_size,
        ipc_host=args.ipc_host,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from bakery import engine  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.slim.plan import check_image, container_spec, describe_plan, plan_slim  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.ui import err_console  # noqa: PLC0415 - lazy: --help imports no library

    plan = plan_slim(slim_request(args))
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
    from bakery.slim.compose import refuse_existing, render_compose, write_checked  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.slim.plan import check_image, describe_plan, plan_slim  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.ui import err_console  # noqa: PLC0415 - lazy: --help imports no library

    plan = plan_slim(slim_request(args), default_command=COMPOSE_COMMAND)
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
