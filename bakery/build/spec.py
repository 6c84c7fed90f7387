"""What bakery hands to `docker buildx build` for one step: named contexts and the build spec."""

from __future__ import annotations

from pathlib import Path

from bakery import engine, interpreters
from bakery.build.options import BuildOptions
from bakery.build.plan import BuildStep
from bakery.buildkit import DAEMON_DRIVER


def named_contexts(step: BuildStep, options: BuildOptions) -> dict[str, Path | str]:
    """Local pip folders as pip-local-N and a mapped base as docker-image://<ref>."""
    named: dict[str, Path | str] = {
        f"pip-local-{i}": d for i, d in enumerate(options.pip.local_dirs())
    }
    if step.base_context is not None:
        named[familiar_name(step.base_context[0])] = f"docker-image://{step.base_context[1]}"
    if options.python_mirror and interpreters.needs_interpreter(step.variant):
        folder = interpreters.mirror_context(options.python_mirror)
        if folder is not None:
            named[interpreters.CONTEXT] = folder
    return named


def familiar_name(ref: str) -> str:
    """docker.io/library/debian:x -> debian:x: the spelling both `buildx build` and `buildx bake`
    match against a FROM line (bake ignores a context named docker.io/library/...)."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if ref.startswith(prefix):
            return ref.removeprefix(prefix)
    return ref


def build_spec(
    step: BuildStep, options: BuildOptions, secrets: tuple[engine.Secret, ...]
) -> engine.BuildSpec:
    """What bakery hands to `docker buildx build` for `step` (tags come after verification)."""
    return engine.BuildSpec(
        context=options.root, dockerfile=options.root / step.dockerfile, tags=(),
        build_args=dict(step.build_args), secrets=secrets, labels=dict(options.labels),
        build_contexts=named_contexts(step, options), log_path=step.log_path,
        network=options.network, no_cache=options.no_cache, builder=options.builder,
        cache_from=tuple(c.value for c in options.cache_from),
        cache_to=tuple(c.value for c in options.cache_to),
        load=options.builder_driver != DAEMON_DRIVER,
    )  # fmt: skip
