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
    api         read-only GETs on the local daemon's socket, and the `docker exec` argv (stdlib)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bakery import lazy

if TYPE_CHECKING:
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

# Where each name lives. Importing this package imports none of its modules: a name is imported
# on first use (bakery.lazy), so `enter`'s fast path can import bakery.engine.api alone.
_HOME = {
    "BuildLog": "bakery.engine.buildlog",
    "BuildOutcome": "bakery.engine.buildlog",
    "short_step_name": "bakery.engine.buildlog",
    "summarize_build": "bakery.engine.buildlog",
    "BuildSpec": "bakery.engine.builds",
    "STOP_GRACE_SECONDS": "bakery.engine.builds",
    "Secret": "bakery.engine.builds",
    "build_command": "bakery.engine.builds",
    "build_image": "bakery.engine.builds",
    "builder_driver": "bakery.engine.builds",
    "cancel_builds": "bakery.engine.builds",
    "CLI_TIMEOUT_SECONDS": "bakery.engine.client",
    "INSTALL_FIX": "bakery.engine.client",
    "MIN_BUILDX": "bakery.engine.client",
    "STDERR_TAIL_LINES": "bakery.engine.client",
    "classify_engine_problem": "bakery.engine.client",
    "connect": "bakery.engine.client",
    "connected": "bakery.engine.client",
    "tail_lines": "bakery.engine.client",
    "ContainerInfo": "bakery.engine.containers",
    "ContainerSpec": "bakery.engine.containers",
    "DEFAULT_SHM": "bakery.engine.containers",
    "DEVBOX_STOP_SECONDS": "bakery.engine.containers",
    "container_exists": "bakery.engine.containers",
    "container_logs_tail": "bakery.engine.containers",
    "create_container": "bakery.engine.containers",
    "inspect_container": "bakery.engine.containers",
    "list_containers": "bakery.engine.containers",
    "read_container_file": "bakery.engine.containers",
    "remove_container": "bakery.engine.containers",
    "start_container": "bakery.engine.containers",
    "stop_container": "bakery.engine.containers",
    "write_container_files": "bakery.engine.containers",
    "DaemonStorage": "bakery.engine.daemon",
    "DockerInfo": "bakery.engine.daemon",
    "EngineInfo": "bakery.engine.daemon",
    "check_engine": "bakery.engine.daemon",
    "daemon_answers": "bakery.engine.daemon",
    "daemon_storage": "bakery.engine.daemon",
    "docker_info": "bakery.engine.daemon",
    "parse_version": "bakery.engine.daemon",
    "ImageInfo": "bakery.engine.images",
    "image_history": "bakery.engine.images",
    "image_layer_lists": "bakery.engine.images",
    "image_sizes": "bakery.engine.images",
    "import_rootfs": "bakery.engine.images",
    "inspect_image": "bakery.engine.images",
    "remove_image": "bakery.engine.images",
    "save_image": "bakery.engine.images",
    "tag_image": "bakery.engine.images",
    "REGISTRY_TIMEOUT_SECONDS": "bakery.engine.registries",
    "RegistryManifest": "bakery.engine.registries",
    "copy_image": "bakery.engine.registries",
    "login_registry": "bakery.engine.registries",
    "logout_registry": "bakery.engine.registries",
    "pull_image": "bakery.engine.registries",
    "push_image": "bakery.engine.registries",
    "registry_manifest": "bakery.engine.registries",
    "DOCKER_RUN_FAILED": "bakery.engine.run",
    "RUN_CALL_LABEL": "bakery.engine.run",
    "RunResult": "bakery.engine.run",
    "compose_config": "bakery.engine.run",
    "exec_argv": "bakery.engine.run",
    "exec_capture": "bakery.engine.run",
    "exec_detached": "bakery.engine.run",
    "exec_interactive": "bakery.engine.run",
    "foreground_command": "bakery.engine.run",
    "run_container": "bakery.engine.run",
    "run_foreground": "bakery.engine.run",
    "LoadOutcome": "bakery.engine.streams",
    "STREAM_STOP_SECONDS": "bakery.engine.streams",
    "exported_stream": "bakery.engine.streams",
    "load_images": "bakery.engine.streams",
    "saved_stream": "bakery.engine.streams",
}

if not TYPE_CHECKING:  # mypy sees the imports above, so a misspelt name stays an error
    __getattr__ = lazy.loader(__name__, _HOME, globals())


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
