"""`python build.py [build]`: plan, print the plan, build each variant with BuildKit, verify, tag.

An image is tagged only after its contents were read back and match the variant, so an
interrupted or failed build never leaves a tag pointing at the wrong thing; a re-run resumes
from the BuildKit cache.

The package, one module per concept, top first (a module imports only those below it; none
imports this package's __init__):

    run       build each step (jobs at a time), live status lines, Ctrl+C, tag, the summary;
              the builder's driver, cache registry logins
    verify    the read-back that must pass before a tag; guard failures
    spec      what `docker buildx build` gets: named contexts, the build spec
    secrets   secret files for one build (pip.conf, CA, mirror URLs), removed afterwards
    plan      `BuildStep`s: default variant (and selection), torch source, rendered check, the
              printed plan, bases
    sizes     the size of a local pip source, remembered between builds
    options   `BuildOptions` and the parsers of their values (the arguments: bakery.cli.build)

The command itself (arguments, the default variant, plan → bake file or builds, cache logins)
is bakery.cli.build. `bakery.builder` re-exports these names for callers not yet moved here.
"""

from __future__ import annotations

from bakery.build.options import (
    TORCH_SOURCES,
    BuildOptions,
    parse_base_map,
    parse_torch_index_urls,
    torch_index_for,
)
from bakery.build.plan import (
    BuildStep,
    check_rendered,
    choose_torch_source,
    default_selection,
    default_variant,
    index_reachable,
    plan_builds,
    prepare_bases,
    print_plan,
)
from bakery.build.run import (
    BuildResult,
    build_one,
    cache_logins,
    report_results,
    resolve_builder,
    result_record,
    run_builds,
)
from bakery.build.secrets import build_secrets
from bakery.build.sizes import (
    LARGE_CONTEXT,
    SOURCE_SIZES,
    folder_size,
    folder_stamp,
    remembered_folder_size,
)
from bakery.build.spec import build_spec, familiar_name, named_contexts
from bakery.build.verify import REUSED, as_guard_error, verify_command, verify_image, verify_once
from bakery.host import detect_host_target

__all__ = [
    "LARGE_CONTEXT",
    "REUSED",
    "SOURCE_SIZES",
    "TORCH_SOURCES",
    "BuildOptions",
    "BuildResult",
    "BuildStep",
    "as_guard_error",
    "build_one",
    "build_secrets",
    "build_spec",
    "cache_logins",
    "check_rendered",
    "choose_torch_source",
    "default_selection",
    "default_variant",
    "detect_host_target",
    "familiar_name",
    "folder_size",
    "folder_stamp",
    "index_reachable",
    "named_contexts",
    "parse_base_map",
    "parse_torch_index_urls",
    "plan_builds",
    "prepare_bases",
    "print_plan",
    "remembered_folder_size",
    "report_results",
    "resolve_builder",
    "result_record",
    "run_builds",
    "torch_index_for",
    "verify_command",
    "verify_image",
    "verify_once",
]
