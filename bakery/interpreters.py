"""Where a variant's Python interpreter comes from, decided and checked at plan time.

A variant on its base image's Python (Debian 12: 3.11) needs nothing. Any other Python is
installed by uv from python-build-standalone, which lives on GitHub. `--python-mirror` points uv at
a copy instead (uv's UV_PYTHON_INSTALL_MIRROR, https://docs.astral.sh/uv/reference/environment/):

* a URL (an HTTP mirror of the GitHub release downloads) travels as the BuildKit secret
  `python-mirror`, so credentials in it never reach a layer, ARG or label;
* a DIR (the same layout: `<release>/cpython-<version>+<release>-<triple>-….tar.gz`) is passed as
  the named build context `python-mirror`, bind-mounted at /mnt/python-mirror for the uv step only,
  and the secret then says `file:///mnt/python-mirror`.

Without a mirror, the plan refuses up front when GitHub does not answer, instead of a build that
fails minutes later inside uv.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from bakery.errors import UsageError
from bakery.matrix import Variant

DOWNLOAD_URL = "https://github.com/astral-sh/python-build-standalone/releases"
MOUNT = "/mnt/python-mirror"
CONTEXT = "python-mirror"
ARCH_TRIPLE = "x86_64-unknown-linux-gnu"


def needs_interpreter(v: Variant) -> bool:
    return v.python != v.base_python


def is_url(mirror: str) -> bool:
    return "://" in mirror


def mirror_secret(mirror: str) -> str:
    """What uv's UV_PYTHON_INSTALL_MIRROR is set to inside the build step."""
    return mirror if is_url(mirror) else f"file://{MOUNT}"


def mirror_context(mirror: str) -> Path | None:
    return None if not mirror or is_url(mirror) else Path(mirror).resolve()


_REACHABLE: dict[tuple[str, Path | None], bool] = {}


def download_reachable(ca_cert: Path | None, timeout: float = 5.0) -> bool:
    key = (DOWNLOAD_URL, ca_cert)
    if key not in _REACHABLE:
        _REACHABLE[key] = _answers(DOWNLOAD_URL, ca_cert, timeout)
    return _REACHABLE[key]


def _answers(url: str, ca_cert: Path | None, timeout: float) -> bool:
    context = ssl.create_default_context(cafile=str(ca_cert) if ca_cert else None)
    request = urllib.request.Request(url, method="HEAD")  # noqa: S310 - DOWNLOAD_URL, https
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context):  # noqa: S310 - fixed https URL
            return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def interpreter_archives(folder: Path, python: str) -> list[Path]:
    """python-build-standalone archives for CPython `python` (e.g. 3.12) under `folder`."""
    pattern = f"cpython-{python}.*-{ARCH_TRIPLE}*.tar.*"
    return sorted(p for p in folder.glob(f"*/{pattern}") if p.is_file())


def check_interpreter_sources(
    variants: Sequence[Variant], mirror: str, ca_cert: Path | None
) -> str:
    """One line for the plan saying where interpreters come from; UsageError if nowhere."""
    needed = sorted({v.python for v in variants if needs_interpreter(v)})
    if not needed:
        return "interpreters: every selected variant uses its base image's Python"
    if mirror and is_url(mirror):
        return f"interpreters {', '.join(needed)}: from the mirror (secret 'python-mirror')"
    if mirror:
        _check_folder(Path(mirror), needed)
        return f"interpreters {', '.join(needed)}: from the folder {mirror}"
    if download_reachable(ca_cert):
        return f"interpreters {', '.join(needed)}: downloaded by uv from {DOWNLOAD_URL}"
    who = sorted(v.id for v in variants if needs_interpreter(v))
    raise UsageError(
        f"{len(who)} selected variant(s) need a Python interpreter download ({', '.join(needed)}: {', '.join(who[:4])}{' …' if len(who) > 4 else ''})",
        f"{DOWNLOAD_URL} (python-build-standalone, where uv fetches interpreters) is unreachable from this host",
        f"pass --python-mirror URL|DIR with a copy of those releases, or select variants on the base's Python (--python {variants[0].base_python or '3.11'})",
    )


def _check_folder(folder: Path, needed: Sequence[str]) -> None:
    if not folder.is_dir():
        raise UsageError(
            f"--python-mirror {str(folder)!r} is neither a URL nor a folder",
            "a folder must exist on this host (it is passed as a build context)",
            "pass the folder holding <release>/cpython-<version>+<release>-x86_64-unknown-linux-gnu-….tar.gz, or an http(s) URL",
        )
    missing = [p for p in needed if not interpreter_archives(folder, p)]
    if missing:
        looked = ", ".join(f"{folder}/*/cpython-{p}.*-{ARCH_TRIPLE}*.tar.*" for p in missing)
        raise UsageError(
            f"--python-mirror {folder} has no interpreter for Python {', '.join(missing)}",
            f"looked for {looked}",
            "copy the python-build-standalone release files uv needs into that layout (`uv python install --dry-run` names them), or pick other --python values",
        )
