"""The command line of bundles: `save`, `load`, `export` and `import` (the library: bakery.bundle).

Each handler turns its arguments into calls of bakery.bundle's modules and prints the outcome.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bakery.cli.common import AddParser, Parents, add_command, selection_of
from bakery.defaults import LOADER_NAME, ZSTD_LEVEL
from bakery.errors import EXIT_FAILED, EXIT_OK, UsageError

COMMANDS: tuple[str, ...] = ("save", "load", "export", "import")


def cmd_save(args: argparse.Namespace) -> int:
    from bakery import engine  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.bundle import save as bundle_save  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.bundle.load import CONTAINERD_PROBLEM  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.bundle.manifest import manifest_to_json  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.bundle.streams import need_zstd, size_text  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.ui import err_console  # noqa: PLC0415 - lazy: --help imports no library

    console = err_console()
    need_zstd()
    plan = bundle_save.plan_save(selected_refs(args), args.output, args.since, args.level)
    bundle_save.print_save_plan(plan, console)
    if args.dry_run:
        console.print("dry run: nothing was saved")
        return EXIT_OK
    if engine.daemon_storage().containerd_store:
        raise UsageError(*CONTAINERD_PROBLEM)
    started = time.monotonic()
    manifest = bundle_save.save_bundle(plan, console)
    archive = manifest.archives[0]
    seconds = time.monotonic() - started
    console.print(
        f"saved {manifest.kind} bundle {plan.output}: {size_text(archive.bytes)} compressed "
        f"({size_text(archive.tar_bytes)} tar) in {seconds:.0f}s; on the server: "
        f"`python build.py load {plan.output}` or `sh {plan.output / LOADER_NAME}`"
    )
    if args.json:
        print(manifest_to_json(manifest), end="")
    return EXIT_OK


def selected_refs(args: argparse.Namespace) -> tuple[str, ...]:
    """--image refs plus the selection's images (`<repository>:<tag>`)."""
    refs = list(args.image)
    selection = selection_of(args)
    chosen = not selection.empty
    if not chosen and not refs:
        raise UsageError(
            "no image selected",
            fix="name them with --target/--torch/--python/--flavour/--variant, or --image REF",
        )
    if chosen:
        from bakery.matrix import load_selection  # noqa: PLC0415 - lazy: --help imports no library

        _, variants = load_selection(args.matrix, selection)
        refs += [v.ref(args.repository) for v in variants]
    return tuple(dict.fromkeys(refs))


def cmd_load(args: argparse.Namespace) -> int:
    from bakery.bundle.load import check_daemon, load_bundle, probe_image, verify_bundle  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.bundle.manifest import read_bundle  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.bundle.streams import need_zstd  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.ui import err_console  # noqa: PLC0415 - lazy: --help imports no library

    console = err_console()
    need_zstd()
    bundle = read_bundle(args.bundle)
    if bundle.manifest.kind == "export":
        raise UsageError(
            f"{bundle.directory} is an export (one flattened layer per image), not a saved bundle",
            fix=f"use `python build.py import {bundle.directory}`",
        )
    started = time.monotonic()
    verify_bundle(bundle, console)
    check_daemon(bundle, console)
    images = load_bundle(bundle, console)
    console.print(
        f"loaded {bundle.manifest.kind} bundle {bundle.directory} in {time.monotonic() - started:.0f}s"
    )
    verdicts = {i.id: probe_image(i) for i in images} if args.probe else {}
    for image in images:
        verdict = verdicts.get(image.id)
        shown = "not run" if verdict is None else f"{verdict.verdict} — {verdict.hint}"
        console.print(f"  {', '.join(image.tags)}  {image.id[:19]}  probe: {shown}")
    if args.json:
        records = [
            {
                "tags": list(i.tags),
                "id": i.id,
                "probe": verdicts[i.id].__dict__ if verdicts.get(i.id) else None,
            }
            for i in images
        ]
        print(json.dumps({"bundle": str(bundle.directory), "images": records}, indent=2))
    bad = [v for v in verdicts.values() if v is not None and not v.good]
    return EXIT_FAILED if bad else EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from bakery.bundle import save as bundle_save  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.bundle.exportimport import export_bundle  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.bundle.streams import need_zstd, size_text  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.ui import err_console  # noqa: PLC0415 - lazy: --help imports no library

    console = err_console()
    need_zstd()
    if not 1 <= args.level <= 19:
        raise UsageError(f"--level {args.level} is not a zstd level", fix="use 1 to 19; default 3")
    images = bundle_save.plan_images(selected_refs(args))
    manifest = export_bundle(images, args.output, args.level, console)
    for image in manifest.images:
        archive = manifest.archive(image.archive)
        console.print(
            f"exported {image.ref} -> {args.output / archive.file} ({size_text(archive.bytes)})"
        )
    console.print(f"on the server: `python build.py import {args.output}`")
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from bakery.bundle.exportimport import export_bundle_of, import_image, import_plain  # noqa: PLC0415 - lazy: --help imports no library
    from bakery.ui import err_console  # noqa: PLC0415 - lazy: --help imports no library

    console = err_console()
    found = export_bundle_of(args.source)
    if found is None:
        new_id = import_plain(args.source, args.tag, console)
        console.print(f"imported {args.source} as {args.tag} ({new_id[:19]}) without its config")
        return EXIT_OK
    bundle, only = found
    if bundle.manifest.kind != "export":
        raise UsageError(
            f"{bundle.directory} is a saved bundle, not an export",
            fix=f"use `python build.py load {bundle.directory}` (it keeps layers and config)",
        )
    images = [i for i in bundle.manifest.images if only is None or i.archive == only]
    if args.tag and len(images) > 1:
        raise UsageError(f"--tag names one image, {bundle.directory} holds {len(images)}")
    for image in images:
        new_id = import_image(bundle, image, args.tag, console)
        shown = args.tag or ", ".join(image.tags)
        console.print(
            f"imported {shown} ({new_id[:19]}): ENV, ENTRYPOINT, CMD, WORKDIR, USER and "
            f"{len(image.config.labels)} labels restored from {bundle.manifest_path}"
        )
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# The parsers

SAVE_DESCRIPTION = """\
Write the selected images into one bundle directory for an offline server:
images.tar.zst (all images, shared layers once, zstd), manifest.json (images, tags, ids, layer
chains, versions, sizes, sha256) and load.sh (loads it with only docker, zstd and coreutils).

  python build.py save --target cpu -o /media/usb/bundle-1
  python build.py save --target cpu -o /media/usb/bundle-2 --since /media/usb/bundle-1

--since OLD writes a delta: the layers the server already has from OLD are left out, so a
training-code change ships megabytes. Everything is written atomically, manifest last.
"""
LOAD_DESCRIPTION = """\
Load a bundle written by `save`: check the manifest and the archive's sha256 and contents
before Docker is touched, then the free space and (for a delta) the base layers, load, check
the image ids, tag, and run bakery-probe in each image. A damaged, truncated or mismatched
bundle is refused and nothing is loaded.
"""
EXPORT_DESCRIPTION = """\
Flatten each selected image into one layer (`docker export` of a never-started container),
zstd-compressed, beside a manifest.json with the image's config. Prefer `save`: an export
loses layer sharing and history. `import` restores ENV, ENTRYPOINT, CMD, WORKDIR, USER and
labels from the manifest.
"""
IMPORT_DESCRIPTION = """\
`docker import` an export with its config restored from the manifest (ENV, ENTRYPOINT, CMD,
WORKDIR, USER, labels). SOURCE is an export directory, its manifest.json or one of its
archives. A tar without a manifest is imported with a warning (it gets no config) and needs
--tag.
"""


def _add_output_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", type=Path, required=True, help="the bundle directory to write")
    p.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="REF",
        help="an image to include (repeatable); with or instead of the selection",
    )
    p.add_argument(
        "--level",
        type=int,
        default=ZSTD_LEVEL,
        help=f"zstd level (default {ZSTD_LEVEL})",
    )


def register(add: AddParser, parents: Parents) -> None:
    """Add `save`, `load`, `export` and `import`."""
    selected = [parents.common, parents.selection, parents.repository]
    common = [parents.common]
    # fmt: off
    save = add_command(add, "save", selected, "write a bundle for offline servers", SAVE_DESCRIPTION)
    _add_output_arguments(save)
    save.add_argument("--since", type=Path, default=None, metavar="OLD", help="write a delta against this bundle (directory or manifest.json)")
    save.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    save.add_argument("--json", action="store_true", help="print the manifest on stdout")
    save.set_defaults(handler=cmd_save)
    load = add_command(add, "load", common, "verify and load a bundle", LOAD_DESCRIPTION)
    load.add_argument("bundle", type=Path, metavar="BUNDLE", help="the bundle directory (or its manifest.json)")
    load.add_argument("--no-probe", dest="probe", action="store_false", help="do not run bakery-probe after loading")
    load.add_argument("--json", action="store_true", help="print the result on stdout")
    load.set_defaults(handler=cmd_load)
    export = add_command(add, "export", selected, "flatten images for docker import", EXPORT_DESCRIPTION)
    _add_output_arguments(export)
    export.set_defaults(handler=cmd_export)
    imp = add_command(add, "import", common, "docker import an export with its config", IMPORT_DESCRIPTION)
    imp.add_argument("source", type=Path, metavar="SOURCE", help="export directory, its manifest.json, or a tar")
    imp.add_argument("--tag", default=None, help="the image name (needed for a tar without manifest)")
    imp.set_defaults(handler=cmd_import)
    # fmt: on
