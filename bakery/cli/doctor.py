"""`doctor`: check this host and engine, and say what to fix (bakery.doctor)."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from bakery.cli.common import AddParser, Parents, add_command, selection_of

COMMANDS: tuple[str, ...] = ("doctor",)

DESCRIPTION = """\
Check this host for building and running bakery's images, and say how to fix what fails:
the Docker daemon and its version, buildx, free disk, GPUs (/dev/kfd, /dev/dri and your
groups; the NVIDIA runtime and whether it works; cgroup notes), proxy and CA settings,
registry mirrors, whether the selected images (default: this host's target) exist here, and
per variant whether this host can build it and from which sources (torch, interpreter).

exit codes: 0 no check failed (warn and skip allowed), 1 a check failed, 2 bad usage.
--json prints a list of {check, status: ok|warn|fail|skip, detail, fix}.
"""


def register(add: AddParser, parents: Parents) -> None:
    """Add `doctor`."""
    p = add_command(
        add,
        "doctor",
        [parents.common, parents.selection, parents.repository],
        "check the host, with a fix for each failure",
        DESCRIPTION,
    )
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    # Test seam: where device nodes are looked up (tests pass mknod-made nodes).
    p.add_argument("--dev-root", type=Path, default=Path("/dev"), help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from bakery.doctor import FAIL, DoctorRequest, exit_code, print_checks, run_checks  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.ui import err_console  # noqa: PLC0415 - lazy: --help imports no library

    request = DoctorRequest(args.matrix, selection_of(args), args.repository, args.dev_root)
    checks = run_checks(request)
    code = exit_code(checks)
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
        return code
    print_checks(checks)
    failed = sum(c.status == FAIL for c in checks)
    err_console().print(f"{failed} check(s) failed" if failed else "no check failed")
    return code
