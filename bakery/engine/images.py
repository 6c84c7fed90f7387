"""Images in the daemon: inspect, sizes, tag, remove, history, save to a file, import a rootfs.

`inspect_image` and `image_sizes` run the CLI directly: `list` calls them and must not import
python-on-whales (issue 17).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from bakery.engine.api import get_json
from bakery.engine.api import image as api_image
from bakery.engine.api import post as api_post
from bakery.engine.client import (
    CLI_TIMEOUT_SECONDS,
    _cli_bytes,
    _docker,
    _docker_command,
    _docker_errors,
    _run_cli,
    api_env,
    classify_engine_problem,
)
from bakery.errors import DockerError, UsageError


@dataclass(frozen=True)
class ImageInfo:
    id: str
    repo_tags: tuple[str, ...]
    size: int  # bytes
    labels: Mapping[str, str]
    env: Mapping[str, str]
    cmd: tuple[str, ...] | None
    entrypoint: tuple[str, ...] | None
    workdir: str
    user: str
    layers: tuple[str, ...]  # RootFS diff ids, base first


def _as_tuple(values: Sequence[str] | None) -> tuple[str, ...] | None:
    return None if values is None else tuple(values)


def _parse_env(pairs: Sequence[str] | None) -> Mapping[str, str]:
    env: dict[str, str] = {}
    for pair in pairs or ():
        key, _, value = pair.partition("=")
        env[key] = value
    return MappingProxyType(env)


def _workdir(path: object) -> str:
    # An unset WorkingDir is "" in Docker's JSON (python-on-whales made it Path(".")): unset.
    return "" if path is None or str(path) in ("", ".") else str(path)


def inspect_image(ref: str) -> ImageInfo | None:
    """What the daemon knows about an image; None when it has no such image.

    `docker image inspect` through the CLI: `list` calls this and must not import
    python-on-whales (issue 17).
    """
    found_here = api_image(ref, api_env())  # the local daemon's socket: no process started
    if isinstance(found_here, dict):
        return _image_info(found_here)
    try:
        output = _cli_bytes(["image", "inspect", ref], f"could not inspect image {ref}")
    except DockerError as exc:
        if "no such image" in exc.stderr_tail.lower():
            return None
        raise
    found = json.loads(output)
    return _image_info(found[0]) if found else None


def image_sizes(refs: Sequence[str]) -> dict[str, int | None]:
    """Bytes of each image the daemon has, None for the others: one `docker image inspect` for
    all of them (one call per image made `list` take seconds)."""
    if not refs:
        return {}
    listed = get_json("/images/json", api_env()) if not any("@" in r for r in refs) else None
    if isinstance(listed, list):  # the local daemon's socket: one answer, no process started
        return _sizes_by_tag(refs, ((i.get("RepoTags"), i.get("Size")) for i in listed))
    command = [*_docker_command(), "image", "inspect", "--format", "{{json .RepoTags}}\t{{.Size}}"]
    try:
        done = subprocess.run(
            [*command, *refs], capture_output=True, text=True, timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise DockerError("could not inspect the images: timed out", command=command) from exc
    missing = classify_engine_problem(done.stderr) if done.returncode else None
    if missing is not None:
        raise missing
    lines = (line.rpartition("\t") for line in done.stdout.splitlines())  # missing: stderr only
    return _sizes_by_tag(refs, ((json.loads(tags or "null"), size) for tags, _, size in lines))


def _sizes_by_tag(refs: Sequence[str], found: Iterable[tuple[Any, Any]]) -> dict[str, int | None]:
    """Each ref's size from (RepoTags, Size) pairs of the images found; None when not found."""
    sizes: dict[str, int | None] = dict.fromkeys(refs)
    for tags, size in found:
        for tag in tags or ():
            if tag in sizes:
                sizes[tag] = int(size)
    return sizes


def _image_info(raw: Mapping[str, Any]) -> ImageInfo:
    config = raw.get("Config") or {}
    return ImageInfo(
        id=str(raw.get("Id", "")),
        repo_tags=tuple(raw.get("RepoTags") or ()),
        size=int(raw.get("Size") or 0),
        labels=MappingProxyType(dict(config.get("Labels") or {})),
        env=_parse_env(config.get("Env")),
        cmd=_as_tuple(config.get("Cmd")),
        entrypoint=_as_tuple(config.get("Entrypoint")),
        workdir=_workdir(config.get("WorkingDir")),
        user=str(config.get("User") or ""),
        layers=tuple((raw.get("RootFS") or {}).get("Layers") or ()),
    )


def tag_image(image_id: str, tag: str) -> None:
    repository, sep, name = tag.rpartition(":")
    if (
        sep
        and "/" not in name
        and api_post(f"/images/{image_id}/tag?repo={repository}&tag={name}", api_env())
    ):
        return
    _run_cli(["image", "tag", image_id, tag], f"could not tag {image_id} as {tag}")


def remove_image(ref: str, *, force: bool = True) -> None:
    """Remove an image (or one of its tags); an absent image is not an error."""
    from python_on_whales.exceptions import NoSuchImage  # noqa: PLC0415

    with _docker_errors(f"could not remove image {ref}"), contextlib.suppress(NoSuchImage):
        _docker().image.remove(ref, force=force)


def image_history(ref: str) -> list[str]:
    """The `created_by` line of every layer, newest first (`docker history --no-trunc`)."""
    output = _run_cli(
        ["image", "history", "--no-trunc", "--format", "{{.CreatedBy}}", ref],
        f"could not read the history of image {ref}",
    )
    return output.splitlines()


def save_image(refs: Sequence[str], dest: Path) -> None:
    """`docker save` the images to `dest`; a half-written archive never carries the final name."""
    if not refs:
        raise UsageError("save_image needs at least one image")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        with _docker_errors(f"could not save {', '.join(refs)} to {dest}"):
            _docker().image.save(list(refs), output=partial)
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)


def import_rootfs(tar: Path, tag: str, changes: Sequence[str], message: str = "") -> str:
    """`docker import` a root filesystem tarball with Dockerfile `changes`; return the image id."""
    if not tar.is_file():
        raise UsageError(f"root filesystem archive {tar} does not exist")
    with _docker_errors(f"could not import {tar} as {tag}"):
        image = _docker().image.import_(tar, tag, changes=list(changes), message=message or None)
    return image.id


def image_layer_lists() -> list[tuple[str, ...]]:
    """The RootFS diff ids (base first) of every image the daemon holds, untagged ones too."""
    listed = _run_cli(["image", "ls", "--all", "--quiet", "--no-trunc"], "could not list images")
    ids = sorted(set(listed.split()))
    if not ids:
        return []
    output = _run_cli(
        ["image", "inspect", "--format", "{{json .RootFS.Layers}}", *ids],
        "could not read the layers of the daemon's images",
    )
    return [tuple(json.loads(line) or ()) for line in output.splitlines() if line.strip()]
