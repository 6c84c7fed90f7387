"""The bundle directory: what bakery may replace in it, and replacing an old bundle with a new one.

`-o` must be new, empty or a bundle bakery wrote (nothing else is ever deleted or replaced); an
old bundle there stays whole until the new archives are complete, then its manifest goes first.
Every file is written under a temporary name, fsynced and renamed (bakery.atomicfile).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from bakery.atomicfile import TEMP_SUFFIX, PendingFile, fsync_dir, write_atomic
from bakery.bundle.manifest import (
    ARCHIVE_NAME,
    LOADER_NAME,
    MANIFEST_NAME,
    Manifest,
    manifest_to_json,
    parse_manifest,
)
from bakery.errors import BakeryError, BundleError, UsageError

PARTIAL_SUFFIX = ".partial"
SAVE_NAMES = (ARCHIVE_NAME, LOADER_NAME, MANIFEST_NAME)


def write_file_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `path` atomically and durably (bakery.atomicfile)."""
    write_atomic(path, data, mode)


def is_leftover(name: str) -> bool:
    """A temporary file a killed save or export left behind (never a user's file)."""
    match = re.fullmatch(rf"\.(.+)\.[A-Za-z0-9_]{{8}}{re.escape(TEMP_SUFFIX)}", name)
    if match is not None:
        base = match.group(1)
    elif name.endswith(PARTIAL_SUFFIX):  # bakery before atomicfile: `<name>.partial`
        base = name.removesuffix(PARTIAL_SUFFIX)
    else:
        return False
    return base in (ARCHIVE_NAME, LOADER_NAME, MANIFEST_NAME) or base.endswith(".rootfs.tar.zst")


def owned_names(manifest: Manifest) -> set[str]:
    """The files of a bundle that its manifest vouches bakery wrote."""
    names = {MANIFEST_NAME, *(a.file for a in manifest.archives)}
    return names | ({LOADER_NAME} if manifest.kind != "export" else set())


def _own_manifest(path: Path) -> Manifest | None:
    if not path.is_file():
        return None
    try:
        return parse_manifest(path.read_bytes().decode("utf-8", errors="replace"), path)
    except (BundleError, OSError):
        return None


def check_output(directory: Path, names: Sequence[str]) -> Manifest | None:
    """The bundle `directory` already holds (to be replaced), or None for a new or empty one.

    UsageError, before anything is written, for a folder that holds files that are not a
    bakery bundle's, or files the new bundle would overwrite that its old manifest does not name.
    """
    if not directory.exists():
        return None
    if not directory.is_dir():
        raise UsageError(f"-o {directory} is not a folder", fix="give a new or empty folder")
    present = sorted(p.name for p in directory.iterdir() if not is_leftover(p.name))
    if not present:
        return None
    old = _own_manifest(directory / MANIFEST_NAME)
    if old is None:
        shown = ", ".join(repr(n) for n in present[:5]) + (", ..." if len(present) > 5 else "")
        raise UsageError(
            f"-o {directory} is not empty and is not a bakery bundle (it holds {shown})",
            "bakery never deletes or replaces files it did not write",
            "choose a new or empty folder for -o (or a bundle folder bakery wrote)",
        )
    clash = [n for n in names if n in present and n not in owned_names(old)]
    if clash:
        raise UsageError(
            f"-o {directory} holds {', '.join(clash)}, which its bundle's {MANIFEST_NAME} does not name",
            "bakery never replaces files it did not write",
            "move those files away, or choose another folder for -o",
        )
    return old


def remove_leftovers(directory: Path) -> None:
    for path in directory.iterdir():
        if is_leftover(path.name):
            path.unlink(missing_ok=True)


def install_bundle(
    directory: Path,
    old: Manifest | None,
    archives: Sequence[PendingFile],
    manifest: Manifest,
    loader: str | None,
) -> None:
    """Replace the old bundle with the new, whose archives are complete and fsynced.

    The old manifest goes first (from then on the folder is no bundle), the manifest is
    written last; files only the old bundle named are removed at the end.
    """
    old_manifest = directory / MANIFEST_NAME
    if old_manifest.exists():
        old_manifest.unlink()
        fsync_dir(directory)
    for pending in archives:
        pending.commit()
    if loader is not None:
        write_atomic(directory / LOADER_NAME, loader, 0o755)
    write_atomic(old_manifest, manifest_to_json(manifest))
    for name in sorted(owned_names(old) - owned_names(manifest)) if old is not None else []:
        (directory / name).unlink(missing_ok=True)


@contextlib.contextmanager
def writing_bundle(where: Path) -> Iterator[None]:
    """Disk errors while writing a bundle become one clear message."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise BakeryError(
            f"could not write {exc.filename or where}: {exc.strerror}",
            "nothing that looks like a complete bundle was left behind",
            "free some space or choose another -o directory, then save again",
        ) from None
