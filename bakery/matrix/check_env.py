"""What a target adds to the system of its images: `env` variables and `apt_packages`.

`apt_packages` may also stand at the top of the file, for every target.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bakery.errors import shown
from bakery.matrix.checker import Checker, type_name

ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# An ENV value is rendered inside double quotes: no quote, backslash or `$` (Docker would unescape
# or expand them), no control character (a newline would end the instruction).
ENV_VALUE_RE = re.compile(r"[A-Za-z0-9 _.,:;/=+@%#*!?~^&|<>()\[\]{}'-]*")
ENV_VALUE_HINT = "letters, digits, spaces and _.,:;/=+@%#*!?~^&|<>()[]{}'- only (no quotes, backslashes, $ or control characters)"
# Debian policy 5.6.1: lower-case letters, digits, + - . ; at least two characters, starting
# alphanumeric. The names end up on an apt-get command line.
APT_PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")


def read_env(c: Checker, value: Any, path: str) -> tuple[tuple[str, str], ...]:
    table = c.table(value, path)
    if table is None:
        return ()
    result = []
    for key, item in table.items():
        where = f"{path}.{key}"
        if not ENV_NAME_RE.fullmatch(str(key)):
            c.add(
                where,
                f"invalid environment variable name {shown(key)}",
                "use letters, digits and _, not starting with a digit",
            )
        elif not isinstance(item, str):
            c.add(
                where,
                f"must be a string, got {type_name(item)} {shown(item)}",
                f"quote it: {key} = {shown(str(item))}",
            )
        elif not ENV_VALUE_RE.fullmatch(item):
            c.add(where, f"invalid value {shown(item)}", ENV_VALUE_HINT)
        else:
            result.append((str(key), item))
    return tuple(result)


def read_apt_packages(c: Checker, table: Mapping[str, Any], path: str) -> tuple[str, ...]:
    """Optional `apt_packages = ["git", "ffmpeg"]`, each a Debian package name."""
    if "apt_packages" not in table:
        return ()
    where = f"{path}.apt_packages" if path else "apt_packages"
    names = table["apt_packages"]
    if not isinstance(names, list):
        c.add(where, f"must be a list of strings, got {type_name(names)} {names!r}")
        return ()
    bad = [
        (i, n)
        for i, n in enumerate(names)
        if not isinstance(n, str) or not APT_PACKAGE_RE.fullmatch(n)
    ]
    for i, name in bad:
        c.add(
            f"{where}[{i}]",
            f"invalid Debian package name {name!r}",
            "lower-case letters, digits and + - . only, at least 2 characters, starting with a letter or digit (e.g. ffmpeg, libgl1)",
        )
    return () if bad else tuple(names)
