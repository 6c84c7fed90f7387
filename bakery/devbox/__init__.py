"""Persistent dev containers: `up`, `enter`, `status`, `job`, `logs`, `stop`.

One long-lived container per project and user, created once from a variant's image and then
started, entered and stopped for weeks. bakery never removes or recreates one unless asked
(`up --recreate`, with confirmation).

What `up` gives the container:
- the accelerator's device access (`gpu_access`, the one implementation of the GPU flags);
- `--shm-size` (default 8g) or `--ipc host`, for PyTorch DataLoader workers;
- the host user's uid:gid (SUDO_UID/SUDO_GID under sudo; `--user` overrides), so files created
  in the workspace belong to that user, plus a passwd entry and a HOME (`plan_account`);
- the workspace at /workspace, data folders read-only under /data, the host's pip and Hugging
  Face caches, the host's CA bundle, and HF_ENDPOINT/proxy settings passed through;
- labels (`io.bakery.devbox.*`) that tie it to the workspace, the variant and the image.

The main process is a shell that waits for SIGTERM (run under the image's tini entrypoint), so
the container outlives every `enter` and `exit`, and `stop` is immediate.

Test seam: the hidden `--dev-root DIR` option (default /dev) is where device nodes are looked
up, so tests can pass simulated nodes made with mknod (environment.md, "Simulating GPU device
nodes"). The nodes are always mapped to their canonical paths (/dev/kfd, /dev/dri) inside.

The package, one module per concept, top first (a module imports only those below it; none
imports this package's __init__):

    status    `status`, `job`, `logs`, `stop` (show_status, start_job, show_logs, stop_devbox)
    enter     `enter`, with the fast path that imports no Docker client library
    create    `up`: create, keep or replace a container, start it; checks on a given container
    jobs      background jobs in the workspace, exit explanations, training progress
    account   the container's passwd/group entries for the host user
    options   the shared constants; `UpOptions` resolved from an `UpRequest`; the container spec
    fast      `enter -- CMD` on a running container with nothing else imported; the rules both
              enter paths share (default name, settings handed over, workdir, stale note)

The host facts (GPU access, the invoking user, the CA bundle) live in bakery.host.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bakery import lazy

if TYPE_CHECKING:
    from bakery.devbox.account import Account, plan_account
    from bakery.devbox.create import confirm, create_devbox, resolve_name, up_devbox
    from bakery.devbox.enter import enter_devbox
    from bakery.devbox.fast import (
        LABEL,
        LABEL_PREFIX,
        WORKSPACE_IN,
        credential_names,
        enter_fast,
        passthrough_env,
    )
    from bakery.devbox.jobs import (
        TRAIN_CHECKPOINT_DONE,
        TRAIN_CHECKPOINTS,
        TRAIN_METRICS,
        JobStatus,
        absolute_paths,
        explain_exit,
        job_command,
        jobs_dir,
        last_steps,
        list_jobs,
        newest_checkpoint,
        training_progress,
    )
    from bakery.devbox.options import (
        DEFAULT_SHM,
        KEEPALIVE,
        DataMount,
        UpOptions,
        UpRequest,
        choose_variant,
        container_spec,
        default_name,
        host_ca_bundle,
        parse_data,
        stored_env,
        up_options,
        workspace_note,
    )
    from bakery.devbox.status import (
        DevboxStatus,
        LogsRequest,
        human_age,
        metrics_path,
        show_logs,
        show_status,
        start_job,
        status_of,
        stop_devbox,
        training_note,
    )
    from bakery.host import (
        CA_ENV,
        GpuAccess,
        HostUser,
        device_gids,
        gpu_access,
        gpu_run_args,
        host_user,
        invoking_user,
        parse_user,
    )

# Where each name lives: importing this package imports none of its modules (bakery.lazy),
# so build.py can import bakery.devbox.fast alone for `enter`'s fast path.
_HOME = {
    "Account": "bakery.devbox.account",
    "plan_account": "bakery.devbox.account",
    "confirm": "bakery.devbox.create",
    "create_devbox": "bakery.devbox.create",
    "resolve_name": "bakery.devbox.create",
    "up_devbox": "bakery.devbox.create",
    "enter_devbox": "bakery.devbox.enter",
    "enter_fast": "bakery.devbox.fast",
    "JobStatus": "bakery.devbox.jobs",
    "TRAIN_CHECKPOINTS": "bakery.devbox.jobs",
    "TRAIN_CHECKPOINT_DONE": "bakery.devbox.jobs",
    "TRAIN_METRICS": "bakery.devbox.jobs",
    "absolute_paths": "bakery.devbox.jobs",
    "explain_exit": "bakery.devbox.jobs",
    "job_command": "bakery.devbox.jobs",
    "jobs_dir": "bakery.devbox.jobs",
    "last_steps": "bakery.devbox.jobs",
    "list_jobs": "bakery.devbox.jobs",
    "newest_checkpoint": "bakery.devbox.jobs",
    "training_progress": "bakery.devbox.jobs",
    "DEFAULT_SHM": "bakery.devbox.options",
    "DataMount": "bakery.devbox.options",
    "KEEPALIVE": "bakery.devbox.options",
    "LABEL": "bakery.devbox.fast",
    "LABEL_PREFIX": "bakery.devbox.fast",
    "UpOptions": "bakery.devbox.options",
    "UpRequest": "bakery.devbox.options",
    "WORKSPACE_IN": "bakery.devbox.fast",
    "choose_variant": "bakery.devbox.options",
    "container_spec": "bakery.devbox.options",
    "credential_names": "bakery.devbox.fast",
    "default_name": "bakery.devbox.options",
    "host_ca_bundle": "bakery.devbox.options",
    "parse_data": "bakery.devbox.options",
    "passthrough_env": "bakery.devbox.fast",
    "stored_env": "bakery.devbox.options",
    "up_options": "bakery.devbox.options",
    "workspace_note": "bakery.devbox.options",
    "DevboxStatus": "bakery.devbox.status",
    "LogsRequest": "bakery.devbox.status",
    "human_age": "bakery.devbox.status",
    "metrics_path": "bakery.devbox.status",
    "show_logs": "bakery.devbox.status",
    "show_status": "bakery.devbox.status",
    "start_job": "bakery.devbox.status",
    "status_of": "bakery.devbox.status",
    "stop_devbox": "bakery.devbox.status",
    "training_note": "bakery.devbox.status",
    "CA_ENV": "bakery.host",
    "GpuAccess": "bakery.host",
    "HostUser": "bakery.host",
    "device_gids": "bakery.host",
    "gpu_access": "bakery.host",
    "gpu_run_args": "bakery.host",
    "host_user": "bakery.host",
    "invoking_user": "bakery.host",
    "parse_user": "bakery.host",
}
if not TYPE_CHECKING:  # mypy sees the imports above, so a misspelt name stays an error
    __getattr__ = lazy.loader(__name__, _HOME, globals())

__all__ = [
    "CA_ENV",
    "DEFAULT_SHM",
    "KEEPALIVE",
    "LABEL",
    "LABEL_PREFIX",
    "TRAIN_CHECKPOINTS",
    "TRAIN_CHECKPOINT_DONE",
    "TRAIN_METRICS",
    "WORKSPACE_IN",
    "Account",
    "DataMount",
    "DevboxStatus",
    "GpuAccess",
    "HostUser",
    "JobStatus",
    "LogsRequest",
    "UpOptions",
    "UpRequest",
    "absolute_paths",
    "choose_variant",
    "confirm",
    "container_spec",
    "create_devbox",
    "credential_names",
    "default_name",
    "device_gids",
    "enter_devbox",
    "enter_fast",
    "explain_exit",
    "gpu_access",
    "gpu_run_args",
    "host_ca_bundle",
    "host_user",
    "human_age",
    "invoking_user",
    "job_command",
    "jobs_dir",
    "last_steps",
    "list_jobs",
    "metrics_path",
    "newest_checkpoint",
    "parse_data",
    "parse_user",
    "passthrough_env",
    "plan_account",
    "resolve_name",
    "show_logs",
    "show_status",
    "start_job",
    "status_of",
    "stop_devbox",
    "stored_env",
    "training_note",
    "training_progress",
    "up_devbox",
    "up_options",
    "workspace_note",
]
