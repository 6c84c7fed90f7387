"""The Docker engine, behind one small interface: the only package that imports python_on_whales.

Every failure of a docker command leaves this package as a `bakery.errors` type:
`EngineMissingError` when there is no docker binary, no daemon answering, or no buildx >= 0.13;
`DockerError` (command, exit code, last lines of stderr, full log) for everything else.

python-on-whales (and pydantic under it) is imported only inside the functions that call it, so
`list`, `generate` and `enter` on a running container never pay for it (issue 17).

The package, one module per concept (arrows point down; none imports this package's __init__):

    registries  log in/out, push, pull, copy, a registry's manifest (bakery.publish)
    streams     `docker save`/`export` read as streams, `docker load` fed from one (bakery.bundle)
    run         a one-shot container, `docker exec`, a foreground `docker run`, compose's read-back
    builds      `docker buildx build`: run, log, report steps, cancel on interrupt; buildx builders
    containers  long-lived containers: create, start, stop, inspect, list, remove; their files
    images      inspect, sizes, tag, remove, history, save to a file, import a rootfs, layers
    daemon      versions of client, daemon and buildx (check_engine); `docker info` facts
    buildlog    the plain BuildKit progress log, parsed (no docker)
    client      the docker command line, the python-on-whales client, error translation
"""

from __future__ import annotations

from bakery.engine.buildlog import (
    BuildLog,
    BuildOutcome,
    short_step_name,
    summarize_build,
)
from bakery.engine.builds import (
    STOP_GRACE_SECONDS,
    BuildSpec,
    Secret,
    build_command,
    build_image,
    builder_driver,
    cancel_builds,
)
from bakery.engine.client import (
    CLI_TIMEOUT_SECONDS,
    INSTALL_FIX,
    MIN_BUILDX,
    STDERR_TAIL_LINES,
    classify_engine_problem,
    connect,
    connected,
    tail_lines,
)
from bakery.engine.containers import (
    DEFAULT_SHM,
    DEVBOX_STOP_SECONDS,
    ContainerInfo,
    ContainerSpec,
    container_exists,
    container_logs_tail,
    create_container,
    inspect_container,
    list_containers,
    read_container_file,
    remove_container,
    start_container,
    stop_container,
    write_container_files,
)
from bakery.engine.daemon import (
    DaemonStorage,
    DockerInfo,
    EngineInfo,
    check_engine,
    daemon_answers,
    daemon_storage,
    docker_info,
    parse_version,
)
from bakery.engine.images import (
    ImageInfo,
    image_history,
    image_layer_lists,
    image_sizes,
    import_rootfs,
    inspect_image,
    remove_image,
    save_image,
    tag_image,
)
from bakery.engine.registries import (
    REGISTRY_TIMEOUT_SECONDS,
    RegistryManifest,
    copy_image,
    login_registry,
    logout_registry,
    pull_image,
    push_image,
    registry_manifest,
)
from bakery.engine.run import (
    DOCKER_RUN_FAILED,
    RUN_CALL_LABEL,
    RunResult,
    compose_config,
    exec_argv,
    exec_capture,
    exec_detached,
    exec_interactive,
    foreground_command,
    run_container,
    run_foreground,
)
from bakery.engine.streams import (
    STREAM_STOP_SECONDS,
    LoadOutcome,
    exported_stream,
    load_images,
    saved_stream,
)

__all__ = [
    "CLI_TIMEOUT_SECONDS",
    "DEFAULT_SHM",
    "DEVBOX_STOP_SECONDS",
    "DOCKER_RUN_FAILED",
    "INSTALL_FIX",
    "MIN_BUILDX",
    "REGISTRY_TIMEOUT_SECONDS",
    "RUN_CALL_LABEL",
    "STDERR_TAIL_LINES",
    "STOP_GRACE_SECONDS",
    "STREAM_STOP_SECONDS",
    "BuildLog",
    "BuildOutcome",
    "BuildSpec",
    "ContainerInfo",
    "ContainerSpec",
    "DaemonStorage",
    "DockerInfo",
    "EngineInfo",
    "ImageInfo",
    "LoadOutcome",
    "RegistryManifest",
    "RunResult",
    "Secret",
    "build_command",
    "build_image",
    "builder_driver",
    "cancel_builds",
    "check_engine",
    "classify_engine_problem",
    "compose_config",
    "connect",
    "connected",
    "container_exists",
    "container_logs_tail",
    "copy_image",
    "create_container",
    "daemon_answers",
    "daemon_storage",
    "docker_info",
    "exec_argv",
    "exec_capture",
    "exec_detached",
    "exec_interactive",
    "exported_stream",
    "foreground_command",
    "image_history",
    "image_layer_lists",
    "image_sizes",
    "import_rootfs",
    "inspect_container",
    "inspect_image",
    "list_containers",
    "load_images",
    "login_registry",
    "logout_registry",
    "parse_version",
    "pull_image",
    "push_image",
    "read_container_file",
    "registry_manifest",
    "remove_container",
    "remove_image",
    "run_container",
    "run_foreground",
    "save_image",
    "saved_stream",
    "short_step_name",
    "start_container",
    "stop_container",
    "summarize_build",
    "tag_image",
    "tail_lines",
    "write_container_files",
]
