"""`up`, `enter`, `status`, `job`, `logs`, `stop`: the dev containers' command line (bakery.devbox).

`enter -- CMD` on a running container never gets here: bakery.cli.main hands it to
bakery.devbox.enter_fast first, which execs `docker exec` without building this parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bakery.cli import argtypes
from bakery.cli.common import (
    AddParser,
    Handler,
    Parents,
    add_command,
    add_run_flags,
    after_dashes,
    selection_of,
)
from bakery.defaults import DEFAULT_SHM

if TYPE_CHECKING:
    from bakery.devbox import UpRequest

COMMANDS: tuple[str, ...] = ("up", "enter", "status", "job", "logs", "stop")


def _add_name(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--name", default=None, help="container name (default: <user>-<workspace folder>)"
    )
    p.add_argument(
        "--workspace", default=".", help="the project folder, mounted at /workspace (default: .)"
    )


def _add_create_options(p: argparse.ArgumentParser) -> None:
    _add_container_options(p)
    _add_cache_options(p)
    add_run_flags(p)
    p.add_argument("--slim", action="store_true", help="the slim flavour, with --host-env")
    p.add_argument(
        "--host-env",
        default=None,
        metavar="DIR",
        help="slim: the host venv/conda env holding torch and the stack, mounted read-only "
        "(checked as `run --slim` checks it)",
    )
    # Test seam: where device nodes are looked up (tests pass mknod-made nodes).
    p.add_argument("--dev-root", type=Path, default=Path("/dev"), help=argparse.SUPPRESS)


def _add_container_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="DIR[:ro|:rw]",
        help="a data folder, mounted read-only at /data/<folder name> (repeatable)",
    )
    p.add_argument(
        "--user",
        default=None,
        metavar="UID:GID",
        help="run as this uid:gid (default: yours; under sudo the caller's)",
    )
    p.add_argument(
        "--shm-size",
        default=DEFAULT_SHM,
        help=f"shared memory size for DataLoader workers (default: {DEFAULT_SHM})",
    )
    p.add_argument(
        "--ipc-host",
        action="store_true",
        help="share the host's IPC namespace instead of --shm-size",
    )
    p.add_argument(
        "--memory", default=None, help="memory limit, e.g. 64g (no swap beyond it; default: none)"
    )


def _add_cache_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pip-cache",
        default=None,
        metavar="DIR|none",
        help="host pip cache (default: ~/.cache/pip of the user)",
    )
    p.add_argument(
        "--hf-home",
        default=None,
        metavar="DIR|none",
        help="host Hugging Face home (default: $HF_HOME or ~/.cache/huggingface)",
    )
    p.add_argument(
        "--ca-cert",
        default=None,
        metavar="PEM",
        help="CA bundle for pip/requests inside (default: $PIP_CERT, $REQUESTS_CA_BUNDLE, $SSL_CERT_FILE)",
    )


UP_DESCRIPTION = """\
Create a long-lived dev container for a variant's image (detached; it survives your logout and
every `exit`). It runs as your uid:gid with a HOME and a passwd entry, mounts the workspace at
/workspace, data folders read-only under /data, your pip and Hugging Face caches and CA bundle,
passes HF_ENDPOINT and proxy settings (those holding credentials are not stored in the
container: enter and job pass them from your environment), and gets the accelerator's devices (ROCm: /dev/kfd,
/dev/dri with their numeric groups and seccomp=unconfined; CUDA: --gpus all).

If the container exists, `up` only starts it. --recreate replaces it (asks first; --yes for
scripts): files outside the workspace and mounted folders are lost.
"""
ENTER_DESCRIPTION = """\
Open a shell in the dev container (or run `enter -- CMD`). Running: exec. Stopped: start, then
exec, with every file as you left it. Missing: say so and change nothing, unless --create.
`exit` leaves the shell; the container keeps running. Never removes or recreates a container.
"""


STATUS_DESCRIPTION = (
    "List every bakery dev container with its state, image (and whether it is older than its "
    "tag), uptime, and for an exited one the exit code explained and its last log lines. The "
    "last job of each is shown too."
)
JOB_DESCRIPTION = (
    "Run `job -- CMD ARGS` in the background inside the dev container (started if stopped). "
    "Output and exit code go to .bakery/jobs/<id>.log and <id>.exit in the workspace; the job "
    "id is printed on stdout."
)
LOGS_DESCRIPTION = (
    "Show the last lines of the latest job's log (or --job ID); --follow prints it as it grows "
    "until the job ends."
)
STOP_DESCRIPTION = (
    "Stop the dev container. Nothing is removed: `enter` starts it again with every file as it "
    "was. Running jobs are stopped."
)


def _add_up(p: argparse.ArgumentParser) -> None:
    _add_name(p)
    _add_create_options(p)
    p.add_argument("--recreate", action="store_true", help="replace it if it exists (asks first)")
    p.add_argument("--yes", action="store_true", help="answer yes to --recreate's question")


def _add_enter(p: argparse.ArgumentParser) -> None:
    _add_name(p)
    _add_create_options(p)
    p.add_argument("--create", action="store_true", help="create it first if missing (as up)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS instead of a shell")


def _add_status(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", default=None, help="only this container")
    p.add_argument(
        "--lines",
        type=argtypes.whole_number(0),
        default=10,
        help="log lines shown for an exited one",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def _add_job(p: argparse.ArgumentParser) -> None:
    _add_name(p)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS")


def _add_logs(p: argparse.ArgumentParser) -> None:
    _add_name(p)
    p.add_argument("--job", default=None, help="job id (default: the latest)")
    p.add_argument(
        "--tail", type=argtypes.whole_number(0), default=50, help="lines to show (default: 50)"
    )
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    p.add_argument(
        "--metrics",
        action="store_true",
        help="a `stylelora train` job: its run folder's metrics.jsonl instead of its output",
    )


def up_request(args: argparse.Namespace) -> UpRequest:
    """up's (and enter --create's) arguments, unresolved."""
    from bakery.devbox import UpRequest  # noqa: PLC0415 - lazy: --help imports no library

    return UpRequest(
        matrix=args.matrix,
        selection=selection_of(args),
        name=args.name,
        workspace=args.workspace,
        user=args.user,
        repository=args.repository,
        dev_root=args.dev_root,
        slim=args.slim,
        host_env=args.host_env,
        gpus=args.gpus,
        env=tuple(args.env),
        data=tuple(args.data),
        shm_size=args.shm_size,
        ipc_host=args.ipc_host,
        memory=args.memory,
        pip_cache=args.pip_cache,
        hf_home=args.hf_home,
        ca_cert=args.ca_cert,
    )


def cmd_up(args: argparse.Namespace) -> int:
    from bakery.devbox import up_devbox  # noqa: PLC0415 - lazy: --help imports no library

    return up_devbox(up_request(args), recreate=args.recreate, assume_yes=args.yes)


def cmd_enter(args: argparse.Namespace) -> int:
    from bakery.devbox import enter_devbox  # noqa: PLC0415 - lazy: --help imports no library

    return enter_devbox(up_request(args), after_dashes(args.command), create=args.create)


def cmd_status(args: argparse.Namespace) -> int:
    from bakery.devbox import show_status  # noqa: PLC0415 - lazy: --help imports no library

    return show_status(args.name, args.lines, as_json=args.json)


def cmd_job(args: argparse.Namespace) -> int:
    from bakery.devbox import resolve_name, start_job  # noqa: PLC0415 - lazy: --help imports no library

    return start_job(resolve_name(args.name, args.workspace), after_dashes(args.command))


def cmd_logs(args: argparse.Namespace) -> int:
    from bakery.devbox import LogsRequest, resolve_name, show_logs  # noqa: PLC0415 - lazy: --help imports no library

    name = resolve_name(args.name, args.workspace)
    return show_logs(LogsRequest(name, args.job, args.tail, args.follow, args.metrics))


def cmd_stop(args: argparse.Namespace) -> int:
    from bakery.devbox import resolve_name, stop_devbox  # noqa: PLC0415 - lazy: --help imports no library

    return stop_devbox(resolve_name(args.name, args.workspace))


# name, uses the selection (and --repository), help, description, arguments, handler
_COMMANDS: tuple[
    tuple[str, bool, str, str, Callable[[argparse.ArgumentParser], None], Handler], ...
] = (
    ("up", True, "create (or start) a persistent dev container", UP_DESCRIPTION, _add_up, cmd_up),
    ("enter", True, "a shell (or -- CMD) in the dev container", ENTER_DESCRIPTION, _add_enter, cmd_enter),
    ("status", False, "every dev container: state, image, why it exited", STATUS_DESCRIPTION, _add_status, cmd_status),
    ("job", False, "run a command in the background in it", JOB_DESCRIPTION, _add_job, cmd_job),
    ("logs", False, "show a job's output", LOGS_DESCRIPTION, _add_logs, cmd_logs),
    ("stop", False, "stop it (every file is kept)", STOP_DESCRIPTION, _add_name, cmd_stop),
)  # fmt: skip


def register(add: AddParser, parents: Parents) -> None:
    """Add up, enter, status, job, logs and stop."""
    for name, selects, summary, description, add_arguments, handler in _COMMANDS:
        shared = (
            [parents.common, parents.selection, parents.repository] if selects else [parents.common]
        )
        p = add_command(add, name, shared, summary, description)
        add_arguments(p)
        p.set_defaults(handler=handler)
