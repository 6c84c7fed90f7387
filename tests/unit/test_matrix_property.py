"""Property: no string in any matrix value can add, drop or split a rendered instruction.

For any string put in any place of the real matrix, either the matrix is refused with a message
that names that key, or every rendered Dockerfile parses (with dockerfile-parse, a real parser,
not a regex of ours) into exactly the template's instructions, with the value arriving intact,
and the pip files hold exactly one requirement per line.
"""

from __future__ import annotations

import copy
import io
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from packaging.requirements import Requirement

from bakery.errors import ConfigError
from bakery.matrix import Variant, parse_matrix
from bakery.render import render_variant

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = (ROOT / "Dockerfile.in").read_text(encoding="utf-8")
BASE: dict[str, Any] = tomllib.loads((ROOT / "matrix.toml").read_text(encoding="utf-8"))

Path_ = tuple[str | int, ...]


def string_slots(node: Any, path: Path_ = ()) -> Iterator[Path_]:
    """Every place in the matrix that holds a string."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from string_slots(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from string_slots(value, (*path, i))
    elif isinstance(node, str):
        yield path


VALUE_SLOTS = sorted(string_slots(BASE), key=str)
# Tables whose keys are free text and reach a rendered file.
KEY_TABLES: list[Path_] = [
    ("targets", "rocm", "env"),
    ("targets", "cuda", "env"),
    ("stack", 0, "packages"),
    ("stack", 1, "packages"),
]

HOSTILE = ["\n", "\r", '"', "\\", "$", "\n#", "\nRUN touch /tmp/pwn\n", " \\\n", "'", "\x1b[31m",
           "\u0661", "\u202e", "\t", " ", "=", ";", "\x00", "${X}", "\\\n", "`"]  # fmt: skip


@st.composite
def hostile_strings(draw: st.DrawFn, original: str) -> str:
    """Free text, or the original value with hostile fragments spliced in somewhere."""
    if draw(st.booleans()):
        return draw(st.text(max_size=30))
    pieces = draw(st.lists(st.sampled_from(HOSTILE), min_size=1, max_size=3))
    at = draw(st.integers(0, len(original)))
    return original[:at] + "".join(pieces) + original[at:]


def key_path(path: Path_) -> str:
    """The key path as bakery's messages spell it: targets.cpu.python[0], stack[1].python."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def get(data: Any, path: Path_) -> Any:
    for part in path:
        data = data[part]
    return data


def shape(v: Variant) -> tuple[str, bool]:
    """What selects the template's branches: the flavour, and whether Python is the base's."""
    return (v.flavour, v.python == v.base_python)


def representatives(variants: tuple[Variant, ...]) -> list[Variant]:
    """One variant per (target, flavour, Python shape): the template's branches, cheaply."""
    chosen: dict[tuple[str, str, bool], Variant] = {}
    for v in variants:
        chosen.setdefault((v.target, v.flavour, v.python == v.base_python), v)
    return list(chosen.values())


def parse(dockerfile: str) -> DockerfileParser:
    parser = DockerfileParser(fileobj=io.BytesIO())
    parser.content = dockerfile
    return parser


def final_base(parser: DockerfileParser) -> str:
    """The image the final stage starts from, through `FROM <stage>` aliases (e.g. system)."""
    stages: dict[str, str] = {}
    image = ""
    for item in parser.structure:
        if item["instruction"] == "FROM":
            words = item["value"].split()
            image = stages.get(words[0], words[0])
            if len(words) == 3 and words[1].upper() == "AS":
                stages[words[2]] = image
    return image


def instructions(parser: DockerfileParser) -> list[str]:
    return [i["instruction"] for i in parser.structure if i["instruction"] != "COMMENT"]


REFERENCE = {
    shape(v): instructions(parse(render_variant(v, TEMPLATE)[0].content))
    for v in parse_matrix(BASE, Path("matrix.toml")).variants
}


def check_refused_or_intact(data: dict[str, Any], named: str, value: str) -> None:
    try:
        matrix = parse_matrix(data, Path("matrix.toml"))
    except ConfigError as exc:
        keys = [p.key for p in exc.problems]
        parent = named.rpartition(".")[0] or named
        assert any(k.startswith(parent) or named.startswith(k) for k in keys), (named, keys)
        return
    for v in representatives(matrix.variants):
        check_rendered(v)


def check_rendered(v: Variant) -> None:
    dockerfile, constraints, requirements = render_variant(v, TEMPLATE)
    parser = parse(dockerfile.content)
    assert instructions(parser) == REFERENCE[shape(v)], dockerfile.content
    assert final_base(parser) == v.base_ref
    for name, value in v.env:
        assert parser.envs[name] == value
    assert parser.labels["io.bakery.variant"] == v.id
    for file, count in ((constraints, 1 + len(v.companions)), (requirements, len(v.stack))):
        lines = [line for line in file.content.splitlines() if not line.startswith("#")]
        assert len(lines) == count, file.content
        for line in lines:
            requirement = Requirement(line)
            assert str(requirement.specifier).startswith("=="), line


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VALUE_SLOTS).flatmap(
        lambda p: st.tuples(st.just(p), hostile_strings(get(BASE, p)))
    )
)
@example(
    (("targets", "rocm", "env", "HSA_FORCE_FINE_GRAIN_PCIE"), '1"\nRUN touch /tmp/pwn\n#')
)  # the issue's repro
@example((("targets", "cuda", "base_digest"), "sha256:" + "a" * 64 + "\n"))
def test_any_string_in_any_value(slot: tuple[Path_, str]) -> None:
    path, value = slot
    data = copy.deepcopy(BASE)
    get(data, path[:-1])[path[-1]] = value
    check_refused_or_intact(data, key_path(path), value)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(KEY_TABLES), st.text(max_size=20) | st.sampled_from(HOSTILE))
@example(("targets", "rocm", "env"), "FOO\n")
def test_any_string_as_a_key(table_path: Path_, key: str) -> None:
    data = copy.deepcopy(BASE)
    table = get(data, table_path)
    table[key] = "1" if "env" in table_path else "1.0"
    check_refused_or_intact(data, key_path((*table_path, key)), key)


def test_the_issue_repro_is_refused_not_rendered() -> None:
    """The property's refusal branch is the one taken for the issue's value (it can fail)."""
    data = copy.deepcopy(BASE)
    data["targets"]["cpu"]["env"] = {"FOO": '1"\nRUN touch /tmp/pwn\n#'}
    with pytest.raises(ConfigError) as caught:
        parse_matrix(data, Path("matrix.toml"))
    assert [p.key for p in caught.value.problems] == ["targets.cpu.env.FOO"]


def test_the_checker_sees_an_added_instruction() -> None:
    """check_rendered rejects a Dockerfile with one more instruction than the template's."""
    v = parse_matrix(BASE, Path("matrix.toml")).variants[0]
    text = render_variant(v, TEMPLATE)[0].content.replace(
        "BAKERY_VARIANT=", 'X="1"\nRUN touch /tmp/pwn\nENV BAKERY_VARIANT='
    )
    assert instructions(parse(text)) != REFERENCE[shape(v)]
