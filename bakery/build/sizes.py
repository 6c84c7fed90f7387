"""How large a local pip source is, remembered between builds (issue 17)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from bakery.atomicfile import write_cache

LARGE_CONTEXT = 1_000_000_000


def folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


SOURCE_SIZES = Path(".bakery") / "source-sizes.json"


def folder_stamp(folder: Path) -> list[int]:
    """Modification times of `folder` and its direct subfolders: adding, removing or renaming a
    wheel (find-links) or a project's file (a simple index, one folder per project) moves one."""
    stamps = [folder.stat().st_mtime_ns]
    with os.scandir(folder) as entries:
        stamps += sorted(e.stat().st_mtime_ns for e in entries if e.is_dir(follow_symlinks=False))
    return stamps


def remembered_folder_size(folder: Path, cache: Path) -> int:
    """folder_size, walked again only when folder_stamp changed: a multi-GB local index took
    seconds to walk on every build (issue 17)."""
    try:
        stamp = folder_stamp(folder)
    except OSError:
        return folder_size(folder)
    try:
        records = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        records = {}
    if not isinstance(records, dict):
        records = {}
    seen = records.get(str(folder))
    if isinstance(seen, dict) and seen.get("stamp") == stamp:
        return int(seen.get("size", 0))
    size = folder_size(folder)
    records[str(folder)] = {"stamp": stamp, "size": size}
    write_cache(cache, json.dumps(records))  # unwritable: the next build walks the folder again
    return size
