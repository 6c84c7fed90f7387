"""docker-bake.json from the matrix: the same builds, runnable with plain `docker buildx bake`.

Two files, because half of a build is the project's and half is the machine's:

- `docker-bake.json` (committed, written by `generate`, checked by `generate --check`) holds one
  target per variant, groups per accelerator target, torch version and flavour, and `default`.
  Everything in it is machine-independent: the Dockerfile, build args, tags and secret ids.
  Per-machine values are bake variables with safe defaults: `REPOSITORY` (the matrix's),
  `TORCH_SOURCE` (`index`), and the secret files `BAKERY_PIP_CONF` / `BAKERY_CA_CERT`
  (`/dev/null`: an empty secret, which the build treats as "not given").
- a host override (`python build.py --bake-file FILE ...`, never committed) adds what only this
  machine knows: named contexts for local pip folders (`pip-local-N`) and mapped base images, the
  torch source bakery chose, and the paths of the secret files. Without it the Dockerfile's own
  empty `pip-local-N` stages and its `FROM` apply. Bake merges files given with repeated `-f`:
  `docker buildx bake -f docker-bake.json -f FILE GROUP`.

Secrets appear by id only: a value is never written into either file. The pip configuration
file an override points at is written with mode 0600 under `.bakery/bake/`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bakery.atomicfile import write_atomic
from bakery.defaults import BAKE_FILE as BAKE_FILE  # noqa: PLC0414 - re-exported for mypy
from bakery.errors import EXIT_OK
from bakery.matrix import Matrix, Variant

if TYPE_CHECKING:
    from rich.console import Console

    from bakery.build import BuildOptions, BuildStep

SECRET_DEFAULT = "/dev/null"  # noqa: S105 - a path, not a password: an empty secret, ignored by with-build-secrets
SECRET_VARIABLES = {"pipconf": "BAKERY_PIP_CONF", "ca": "BAKERY_CA_CERT"}
# Mirrors of the torch index may carry credentials: by env, so no file and no value here.
ENV_SECRETS = {"torch-index": "BAKERY_TORCH_INDEX_URL"}
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def target_name(variant_id: str) -> str:
    """Bake names allow [A-Za-z0-9_-]: 2.13.0-cpu-py3.11 -> 2_13_0-cpu-py3_11."""
    return _NAME_UNSAFE.sub("_", variant_id)


def _secrets() -> list[str]:
    files = [f"id={sid},src=${{{var}}}" for sid, var in SECRET_VARIABLES.items()]
    return files + [f"id={sid},env={var}" for sid, var in ENV_SECRETS.items()]


def bake_target(v: Variant) -> dict[str, Any]:
    target: dict[str, Any] = {
        "context": ".",
        "dockerfile": f"images/{v.id}/Dockerfile",
        "tags": [f"${{REPOSITORY}}:{v.tag}"],
        "secret": _secrets(),
    }
    if v.flavour == "full":
        target["args"] = {"TORCH_SOURCE": "${TORCH_SOURCE}"}
    return target


def bake_groups(variants: Sequence[Variant]) -> dict[str, dict[str, list[str]]]:
    groups: dict[str, list[str]] = {"default": []}
    for v in variants:
        name = target_name(v.id)
        keys = ("default", v.target, target_name(f"torch-{v.torch}"), v.flavour)
        for key in keys:
            groups.setdefault(key, []).append(name)
    return {key: {"targets": names} for key, names in sorted(groups.items())}


def bake_document(matrix: Matrix) -> dict[str, Any]:
    variables: dict[str, dict[str, str]] = {
        "REPOSITORY": {"default": matrix.project.repository},
        "TORCH_SOURCE": {"default": "index"},
    }
    variables.update({var: {"default": SECRET_DEFAULT} for var in SECRET_VARIABLES.values()})
    return {
        "variable": variables,
        "group": bake_groups(matrix.variants),
        "target": {target_name(v.id): bake_target(v) for v in matrix.variants},
    }


def render_bake(matrix: Matrix) -> str:
    return json.dumps(bake_document(matrix), indent=2, sort_keys=True) + "\n"


def host_override(
    targets: Mapping[str, Mapping[str, Any]], secret_files: Mapping[str, Path]
) -> dict[str, Any]:
    """The per-machine bake file: `targets` maps target name -> {args, contexts, tags}."""
    variables = {
        SECRET_VARIABLES[sid]: {"default": str(path)}
        for sid, path in secret_files.items()
        if sid in SECRET_VARIABLES
    }
    return {"variable": variables, "target": {name: dict(t) for name, t in targets.items()}}


def override_targets(steps: Sequence[BuildStep], options: BuildOptions) -> dict[str, Any]:
    """What bakery's plan adds to each committed target on this machine."""
    from bakery.build import named_contexts  # noqa: PLC0415 - generate needs no docker imports

    targets: dict[str, Any] = {}
    for step in steps:
        target: dict[str, Any] = {"tags": [step.image]}
        if options.labels:
            target["labels"] = dict(options.labels)
        if step.build_args:
            target["args"] = dict(step.build_args)
        contexts = named_contexts(step, options)
        if contexts:
            target["contexts"] = {name: str(src) for name, src in contexts.items()}
        targets[target_name(step.variant.id)] = target
    return targets


def write_host_override(path: Path, steps: Sequence[BuildStep], options: BuildOptions) -> Path:
    """Write the host override for `steps`; the pip configuration goes to a 0600 file beside it."""
    secrets_dir = options.root / ".bakery" / "bake"
    secrets_dir.mkdir(parents=True, exist_ok=True)
    pipconf = write_private(secrets_dir / "pipconf", options.pip.pip_conf())
    files = {"pipconf": pipconf}
    if options.ca_cert is not None:
        files["ca"] = options.ca_cert
    document = host_override(override_targets(steps, options), files)
    write_atomic(path, json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path


def write_private(target: Path, content: str) -> Path:
    """Write atomically with mode 0600 from the start (index URLs may carry credentials)."""
    write_atomic(target, content, mode=0o600)  # its temporary file is 0600 from the start too
    return target


def write_bake_file(steps: Sequence[BuildStep], options: BuildOptions, console: Console) -> int:
    """Write this host's override for the plan and say how to build with it (`build --bake-file`)."""
    from bakery.build import torch_index_for  # noqa: PLC0415 - generate needs no docker imports

    path = write_host_override(options.bake_file or Path(), steps, options)
    names = " ".join(target_name(s.variant.id) for s in steps)
    console.print(f"wrote {path}; build with:")
    console.print(f"  docker buildx bake -f {BAKE_FILE} -f {path} {names}")
    if any(torch_index_for(s.variant, options) != s.variant.index.url for s in steps):
        console.print(f"  (with {ENV_SECRETS['torch-index']}=<mirror URL> in the environment)")
    console.print("bake builds skip bakery's torch read-back before tagging: run `build.py test`")
    return EXIT_OK
