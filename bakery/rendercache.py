"""`generate --check` without rendering again when nothing it reads has changed (issue 17).

After a full check finds images/ in sync (or `generate` has written it), two digests are kept in
.bakery/generate-check.json:

- what rendering reads: the matrix file, the template, every file of the bakery package (the
  checker, the renderer, data/pairing.toml, ...) and which jinja2 is installed (path, size and
  mtime of its package);
- what it produced: every file under images/ and the bake file, by path and content.

The next `generate --check` hashes both again (a few milliseconds: no jinja2, no validation).
When both equal the record, the files on disk are byte for byte the ones a full render from
these same inputs matched, so they still match. Any difference, a missing or damaged record, or
an input that is not a regular file, and the full check runs and reports what differs.
`generate --check --no-cache` always runs it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import stat
from pathlib import Path

from bakery.atomicfile import read_keyed, write_keyed

RECORD = Path(".bakery") / "generate-check.json"
PACKAGE = Path(__file__).resolve().parent


def checked_count(root: Path, matrix: Path, template: Path, bake_file: str) -> int | None:
    """The variant count of the last full check when neither inputs nor outputs changed since."""
    key = _inputs_digest(matrix, template)
    if key is None:
        return None
    record = read_keyed(root / RECORD, key)
    if not isinstance(record, dict) or record.get("outputs") != _outputs_digest(root, bake_file):
        return None
    count = record.get("variants")
    return count if isinstance(count, int) else None


def remember(root: Path, matrix: Path, template: Path, bake_file: str, variants: int) -> None:
    """Record a tree a full render matched (or wrote); a failure to write is only logged."""
    key = _inputs_digest(matrix, template)
    if key is not None:
        value = {"outputs": _outputs_digest(root, bake_file), "variants": variants}
        write_keyed(root / RECORD, key, value)


def _inputs_digest(matrix: Path, template: Path) -> str | None:
    digest = hashlib.sha256()
    for path in (matrix, template, *_package_files()):
        content = _regular_file_bytes(path)
        if content is None:
            return None
        digest.update(f"{path.name}\0{len(content)}\0".encode())
        digest.update(content)
    digest.update(_jinja2_fact().encode())
    return digest.hexdigest()


def _outputs_digest(root: Path, bake_file: str) -> str:
    digest = hashlib.sha256()
    images = root / "images"
    files = sorted(p for p in images.rglob("*") if p.is_file() or p.is_symlink())
    for path in [*files, root / bake_file]:
        content = _regular_file_bytes(path)
        digest.update(f"{path.relative_to(root).as_posix()}\0".encode())
        digest.update(b"\1" if content is None else b"\0" + content)
    return digest.hexdigest()


def _package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _regular_file_bytes(path: Path) -> bytes | None:
    """The file's bytes; None for anything but a regular file (a FIFO is never opened)."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        return path.read_bytes()
    except OSError:
        return None


def _jinja2_fact() -> str:
    spec = importlib.util.find_spec("jinja2")
    origin = spec.origin if spec is not None else None
    if origin is None:
        return "jinja2: none"
    folder = Path(origin).parent
    facts = [
        f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(folder.glob("*.py"))
    ]
    return "jinja2:" + ",".join(facts)
