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

The package, one module per concept (arrows point down; none imports this package's __init__):

    compose   compose.yaml: rendered, read back by Compose, never replacing a file unasked
    plan      the plan (image, mounts, devices, user), its image checks, the container spec
    glibc     the glibc the environment's compiled code needs against the image's
    guards    every reason an environment cannot work in an image, refused together
    access    device flags, the container user, and what that user can read
    hostenv   the host environment read without executing it (Python, torch, dists)
"""

from __future__ import annotations

from bakery.slim.access import (
    container_user,
    device_access,
    paths_to_read,
    unreadable_for,
    user_text,
)
from bakery.slim.compose import (
    COMPOSE_COMMAND,
    COMPOSE_SERVICE,
    compose_document,
    refuse_existing,
    render_compose,
    write_checked,
)
from bakery.slim.glibc import (
    GLIBC_LABEL,
    GLIBC_PROBE_TIMEOUT,
    LEGACY_MANYLINUX,
    GlibcNeed,
    format_version,
    glibc_needs,
    glibc_problems,
    highest_glibc_symbol,
    image_glibc,
    is_shared_object,
    parse_glibc_version,
    platform_glibc,
    recorded_shared_objects,
    wheel_glibc,
)
from bakery.slim.guards import (
    env_problems,
    guard_host_env,
    refuse,
    stack_problems,
    torch_problems,
    torchvision_problems,
    wheel_tag_problems,
    wrong_build,
)
from bakery.slim.hostenv import (
    HOST_ENV_MOUNT,
    Dist,
    HostEnv,
    TorchInfo,
    env_python,
    find_dist,
    inspect_host_env,
    read_metadata_field,
    read_pyvenv_cfg,
    read_torch,
    read_version_py,
)
from bakery.slim.plan import (
    WORKSPACE_MOUNT,
    SlimPlan,
    SlimRequest,
    check_image,
    choose_variant,
    container_spec,
    describe_plan,
    plan_slim,
)

__all__ = [
    "COMPOSE_COMMAND",
    "COMPOSE_SERVICE",
    "GLIBC_LABEL",
    "GLIBC_PROBE_TIMEOUT",
    "HOST_ENV_MOUNT",
    "LEGACY_MANYLINUX",
    "WORKSPACE_MOUNT",
    "Dist",
    "GlibcNeed",
    "HostEnv",
    "SlimPlan",
    "SlimRequest",
    "TorchInfo",
    "check_image",
    "choose_variant",
    "compose_document",
    "container_spec",
    "container_user",
    "describe_plan",
    "device_access",
    "env_problems",
    "env_python",
    "find_dist",
    "format_version",
    "glibc_needs",
    "glibc_problems",
    "guard_host_env",
    "highest_glibc_symbol",
    "image_glibc",
    "inspect_host_env",
    "is_shared_object",
    "parse_glibc_version",
    "paths_to_read",
    "plan_slim",
    "platform_glibc",
    "read_metadata_field",
    "read_pyvenv_cfg",
    "read_torch",
    "read_version_py",
    "recorded_shared_objects",
    "refuse",
    "refuse_existing",
    "render_compose",
    "stack_problems",
    "torch_problems",
    "torchvision_problems",
    "unreadable_for",
    "user_text",
    "wheel_glibc",
    "wheel_tag_problems",
    "write_checked",
    "wrong_build",
]
