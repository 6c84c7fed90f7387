"""Hostile matrix values: refused with the key named and the value escaped, never rendered raw."""

from __future__ import annotations

import copy
import os
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bakery.cli import main
from bakery.errors import ConfigError, printable, shown
from bakery.matrix import load_matrix, parse_matrix
from bakery.render import cuda_arch_list, render_variant

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "matrix.toml"
TEMPLATE = (ROOT / "Dockerfile.in").read_text(encoding="utf-8")


def base_data() -> dict[str, Any]:
    return tomllib.loads(MATRIX.read_text(encoding="utf-8"))


def set_key(data: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def refusal(path: tuple[str | int, ...], value: Any) -> ConfigError:
    data = copy.deepcopy(base_data())
    set_key(data, path, value)
    with pytest.raises(ConfigError) as caught:
        parse_matrix(data, Path("matrix.toml"))
    return caught.value


# (key path, hostile value, key the message must name)
REFUSED: list[tuple[str, tuple[str | int, ...], Any, str]] = [
    ("env-value-adds-run", ("targets", "cpu", "env"), {"FOO": '1"\nRUN touch /tmp/pwn\n#'},
     "targets.cpu.env.FOO"),
    ("env-value-quote", ("targets", "cpu", "env"), {"FOO": 'a"b'}, "targets.cpu.env.FOO"),
    ("env-value-backslash", ("targets", "cpu", "env"), {"FOO": "a\\"}, "targets.cpu.env.FOO"),
    ("env-value-dollar", ("targets", "cpu", "env"), {"FOO": "$HOME"}, "targets.cpu.env.FOO"),
    ("env-name-newline", ("targets", "cpu", "env"), {"FOO\n": "1"}, "targets.cpu.env.FOO\\n"),
    ("digest-trailing-newline", ("targets", "cpu", "base_digest"), "sha256:" + "a" * 64 + "\n",
     "targets.cpu.base_digest"),
    ("base-trailing-newline", ("targets", "cpu", "base"), "debian:bookworm\nRUN x",
     "targets.cpu.base"),
    ("python-arabic-digits", ("targets", "cpu", "python"), ["3.\u0661\u0661"],
     "targets.cpu.python[0]"),
    ("python-trailing-newline", ("targets", "cpu", "python"), ["3.11\n"],
     "targets.cpu.python[0]"),
    ("base-python-trailing-newline", ("targets", "cpu", "base_python"), "3.11\n",
     "targets.cpu.base_python"),
    ("cuda-arch-arabic-digits", ("targets", "cuda", "gpu_archs"), ["sm_\u0669\u0660"],
     "targets.cuda.gpu_archs[0]"),
    ("rocm-arch-trailing-newline", ("targets", "rocm", "gpu_archs"), ["gfx942\n"],
     "targets.rocm.gpu_archs[0]"),
    ("user-trailing-newline", ("project", "user"), "trainer\nRUN x", "project.user"),
    ("repository-trailing-newline", ("project", "repository"), "ghcr.io/x\n",
     "project.repository"),
    ("package-version-newline", ("stack", 0, "packages", "diffusers"),
     "0.42.1\n--index-url=http://evil", "stack[0].packages.diffusers"),
    ("package-version-spaces", ("stack", 0, "packages", "diffusers"), " 0.42.1 ",
     "stack[0].packages.diffusers"),
    ("package-name-newline", ("stack", 0, "packages"), {"diffusers\n": "0.42.1"},
     "stack[0].packages.diffusers\\n"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "value", "key"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_hostile_value_is_refused_naming_the_key(
    path: tuple[str | int, ...], value: Any, key: str
) -> None:
    error = refusal(path, value)
    rendered = error.render()
    assert any(f": {key}: " in p.render() for p in error.problems), rendered
    assert all(line.isprintable() for line in rendered.splitlines()), "a raw control character"
    assert len(rendered.splitlines()) == len(error.problems) + 1, "a value split a message line"


def test_env_values_that_are_plain_text_are_accepted_and_rendered_quoted() -> None:
    data = base_data()
    data["targets"]["cpu"]["env"] = {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True,x=1 y"}
    matrix = parse_matrix(data, Path("matrix.toml"))
    dockerfile = render_variant(matrix.variants[-1], TEMPLATE)[0].content
    assert '    PYTORCH_CUDA_ALLOC_CONF="expandable_segments:True,x=1 y"' in dockerfile


@pytest.mark.parametrize(
    ("archs", "expected"),
    [
        (("sm_80", "sm_86"), "8.0;8.6"),
        (("sm_90a",), "9.0a"),
        (("sm_100", "sm_120"), "10.0;12.0"),
        (("sm_100a",), "10.0a"),
    ],
    ids=["two-digit", "arch-specific-90a", "three-digit", "arch-specific-100a"],
)
def test_cuda_arch_list_spelling(archs: tuple[str, ...], expected: str) -> None:
    assert cuda_arch_list(archs) == expected


def test_two_targets_with_one_index_name_the_targets_not_an_include() -> None:
    data = base_data()
    data["targets"]["cpu2"] = copy.deepcopy(data["targets"]["cpu"])
    with pytest.raises(ConfigError) as caught:
        parse_matrix(data, Path("matrix.toml"))
    rendered = caught.value.render()
    assert "include" not in rendered
    assert (
        "targets.cpu2: yields variant 2.13.0-cpu-py3.11, which targets.cpu yields too" in rendered
    )


def test_repeated_include_is_still_named() -> None:
    data = base_data()
    data["include"] = [{"target": "cpu", "torch": "2.13.0", "python": "3.11"}]
    with pytest.raises(ConfigError) as caught:
        parse_matrix(data, Path("matrix.toml"))
    assert "include: variant 2.13.0-cpu-py3.11 is defined twice" in caught.value.render()


# --- reading the file ----------------------------------------------------------------------


def test_bom_is_named(tmp_path: Path) -> None:
    path = tmp_path / "matrix.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MATRIX.read_bytes())
    with pytest.raises(ConfigError) as caught:
        load_matrix(path)
    assert "byte order mark (BOM)" in caught.value.render()
    assert "without a BOM" in caught.value.render()


def test_deeply_nested_table_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "matrix.toml"
    depth = 100_000
    path.write_text("x = " + "{a = " * depth + "1" + "}" * depth + "\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_matrix(path)
    assert "nested too deeply" in caught.value.render()


def test_deeply_nested_array_through_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "matrix.toml"
    path.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8")
    assert main(["list", "--matrix", str(path)]) == 2
    err = capsys.readouterr().err
    assert "nested too deeply" in err
    assert "Traceback" not in err


def test_fifo_as_matrix_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "matrix.toml"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def load() -> None:
        try:
            load_matrix(fifo)
        except ConfigError as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    reader = threading.Thread(target=load, daemon=True)
    reader.start()
    reader.join(timeout=30)
    if reader.is_alive():  # unblock the reader so the test run can end, then fail
        with open(fifo, "w", encoding="utf-8"):
            pass
        reader.join(timeout=30)
        pytest.fail("load_matrix blocked on a FIFO")
    assert len(outcome) == 1
    assert isinstance(outcome[0], ConfigError)
    assert "is not a regular file" in outcome[0].render()


# --- the one escaping helper ----------------------------------------------------------------

SHOWN: list[tuple[str, object, str]] = [
    ("newline", "a\nb", "'a\\nb'"),
    ("terminal-escape", "\x1b[31mred", "'\\x1b[31mred'"),
    ("rtl-override", "a\u202eb", "'a\\u202eb'"),
    ("plain-unicode-stays", "é", "'é'"),
    ("long-is-cut", "x" * 500, "'" + "x" * 37 + "..." + "x" * 38 + "'"),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in SHOWN], ids=[c[0] for c in SHOWN])
def test_shown_escapes_and_shortens(value: object, expected: str) -> None:
    assert shown(value) == expected


def test_printable_keeps_printable_text() -> None:
    assert printable("targets.cpu: ok — fix") == "targets.cpu: ok — fix"
    assert printable("a\r\n\x07") == "a\\r\\n\\x07"


def test_cli_refusal_shows_a_hostile_value_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = MATRIX.read_text(encoding="utf-8").replace(
        'HSA_FORCE_FINE_GRAIN_PCIE = "1"', 'HSA_FORCE_FINE_GRAIN_PCIE = "1\\u001b[2J\\nRUN x"'
    )
    path = tmp_path / "matrix.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["list", "--matrix", str(path)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err
    assert "targets.rocm.env.HSA_FORCE_FINE_GRAIN_PCIE: invalid value '1\\x1b[2J\\nRUN x'" in err
    assert "no quotes, backslashes, $ or control characters" in err
