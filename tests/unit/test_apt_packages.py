"""apt_packages in matrix.toml: global and per target, strict Debian names, in the apt layer."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bakery.errors import ConfigError
from bakery.matrix import parse_matrix
from bakery.render import render_variant

ROOT = Path(__file__).resolve().parents[2]
DATA = tomllib.loads((ROOT / "matrix.toml").read_text(encoding="utf-8"))
TEMPLATE = (ROOT / "Dockerfile.in").read_text(encoding="utf-8")

BAD = [
    ("shell", "git; rm -rf /", "invalid Debian package name 'git; rm -rf /'"),
    ("upper-case", "Git", "invalid Debian package name 'Git'"),
    ("one-char", "g", "invalid Debian package name 'g'"),
    ("option", "--allow-unauthenticated", "invalid Debian package name '--allow-unauthenticated'"),
    ("newline", "git\n", "invalid Debian package name 'git\\n'"),
    ("non-ascii", "g\u0131t", "invalid Debian package name 'g\u0131t'"),
    ("space", "lib gl1", "invalid Debian package name 'lib gl1'"),
    ("not-a-string", 5, "invalid Debian package name 5"),
]


def parse(mutate: dict[str, Any]) -> Any:
    data = copy.deepcopy(DATA)
    for where, value in mutate.items():
        if where == "":
            data["apt_packages"] = value
        else:
            data["targets"][where]["apt_packages"] = value
    return parse_matrix(data, Path("matrix.toml"))


@pytest.mark.parametrize(("value", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
@pytest.mark.parametrize("where", ["", "cpu"], ids=["global", "target"])
def test_bad_names_are_refused_with_the_key_and_the_fix(
    where: str, value: object, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse({where: ["git", value]})
    text = info.value.render()
    key = "apt_packages[1]" if not where else f"targets.{where}.apt_packages[1]"
    assert f"matrix.toml: {key}: {message}" in text
    assert "lower-case letters, digits and + - ." in text


def test_not_a_list_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        parse({"": "git ffmpeg"})
    assert (
        "apt_packages: must be a list of strings, got a string 'git ffmpeg'" in info.value.render()
    )


def test_global_then_target_packages_reach_the_system_layer() -> None:
    matrix = parse({"": ["git", "ffmpeg"], "cpu": ["libgl1", "git", "g++-12"]})
    cpu = next(v for v in matrix.variants if v.id == "2.13.0-cpu-py3.11")
    rocm = next(v for v in matrix.variants if v.target == "rocm")
    assert cpu.apt_packages == ("git", "ffmpeg", "libgl1", "g++-12")
    assert rocm.apt_packages == ("git", "ffmpeg")
    dockerfile = next(f for f in render_variant(cpu, TEMPLATE) if f.path.name == "Dockerfile")
    text = dockerfile.content
    install = text.index("apt-get install")
    assert (
        "ca-certificates python3 python3-venv procps tini \\\n       git ffmpeg libgl1 g++-12\n"
        in text
    )
    # the same RUN as the apt cache mounts, before anything pip installs
    assert text.rindex("--mount=type=cache,target=/var/cache/apt", 0, install) > 0
    assert install < text.index("python3 -m venv")


def test_no_packages_leaves_the_line_alone() -> None:
    matrix = parse({})
    cpu = next(v for v in matrix.variants if v.id == "2.13.0-cpu-py3.11")
    assert cpu.apt_packages == ()
    dockerfile = next(f for f in render_variant(cpu, TEMPLATE) if f.path.name == "Dockerfile")
    assert "procps tini\n" in dockerfile.content
