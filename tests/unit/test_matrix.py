"""matrix.toml validation: every malformed matrix gives the file, key, value and a fix."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bakery.errors import ConfigError, SelectionError
from bakery.matrix import Selection, load_matrix, parse_matrix, select_variants

ROOT = Path(__file__).resolve().parents[2]
MATRIX = ROOT / "matrix.toml"


def base_data() -> dict[str, Any]:
    return tomllib.loads(MATRIX.read_text(encoding="utf-8"))


def problems_for(mutate: Callable[[dict[str, Any]], None]) -> list[str]:
    data = copy.deepcopy(base_data())
    mutate(data)
    with pytest.raises(ConfigError) as info:
        parse_matrix(data, Path("matrix.toml"))
    return [p.render() for p in info.value.problems]


def setter(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def deleter(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def adder(key: str, rules: list[dict[str, Any]]) -> Callable[[dict[str, Any]], None]:
    def mutate(data: dict[str, Any]) -> None:
        data[key] = rules

    return mutate


CASES: list[tuple[str, Callable[[dict[str, Any]], None], list[str]]] = [
    (
        "unknown-top-key",
        setter("targest", {}),
        ["matrix.toml: targest: unknown key", 'did you mean "targets"'],
    ),
    (
        "unknown-target-key",
        setter("targets.rocm.indx", "rocm6.3"),
        ["targets.rocm.indx: unknown key", 'did you mean "index"', 'valid keys here: "index"'],
    ),
    (
        "unknown-project-key",
        setter("project.repo", "x"),
        ["project.repo: unknown key", 'did you mean "repository"'],
    ),
    (
        "torch-not-a-list",
        setter("targets.cuda.torch", "2.9.1"),
        ["targets.cuda.torch: must be a list of strings, got a string '2.9.1'"],
    ),
    (
        "python-as-float",
        setter("targets.cuda.python", [3.1]),
        ["targets.cuda.python[0]: must be a string, got a number 3.1", 'quote it: "3.10"'],
    ),
    (
        "torch-not-on-rocm-index",
        setter("targets.rocm.torch", ["2.10.0"]),
        [
            "targets.rocm.torch[0]: torch 2.10.0 has no rocm6.3 wheels",
            "rocm6.3 has torch 2.7.0, 2.7.1, 2.8.0, 2.9.0, 2.9.1",
        ],
    ),
    (
        "torch-not-on-cu128",
        setter("targets.cuda.torch", ["2.13.0"]),
        ["targets.cuda.torch[0]: torch 2.13.0 has no cu128 wheels", "cu128 has torch 2.7.0"],
    ),
    (
        "torch-typo-suggests",
        setter("targets.rocm.torch", ["2.9.2"]),
        ['torch 2.9.2 has no rocm6.3 wheels (did you mean "2.9.1"?)'],
    ),
    (
        "python-outside-range",
        setter("targets.rocm.python", ["3.9"]),
        [
            "targets.rocm.python[0]: Python 3.9 is outside torch 2.9.1's range 3.10–3.14",
            "[[exclude]]",
        ],
    ),
    (
        "python-bad-format",
        setter("targets.cpu.python", ["3"]),
        ["targets.cpu.python[0]: invalid Python version '3'", 'use "3.Y"'],
    ),
    (
        "unknown-index",
        setter("targets.cuda.index", "cu129"),
        [
            "targets.cuda.index: unknown wheel index 'cu129'",
            'did you mean "cu128"',
            'valid: "rocm6.3", "cu128", "cpu"',
        ],
    ),
    (
        "bad-digest",
        setter("targets.cpu.base_digest", "sha256:1234"),
        ["targets.cpu.base_digest: invalid value 'sha256:1234'", "64 lower-case hex digits"],
    ),
    (
        "digest-wrong-algo",
        setter("targets.cpu.base_digest", "md5:" + "a" * 64),
        ["targets.cpu.base_digest: invalid value"],
    ),
    (
        "bad-base-name",
        setter("targets.cpu.base", "Debian Bookworm"),
        ["targets.cpu.base: invalid value 'Debian Bookworm'"],
    ),
    (
        "unknown-companion",
        setter("targets.cuda.companions", ["torchvison"]),
        [
            "targets.cuda.companions[0]: unknown companion 'torchvison'",
            'did you mean "torchvision"',
        ],
    ),
    (
        "rocm-arch-wrong-family",
        setter("targets.rocm.gpu_archs", ["sm_90"]),
        ["targets.rocm.gpu_archs[0]: 'sm_90' is not a rocm architecture", "gfx942"],
    ),
    (
        "cuda-arch-bad",
        setter("targets.cuda.gpu_archs", ["gfx90a"]),
        ["targets.cuda.gpu_archs[0]: 'gfx90a' is not a cuda architecture", "sm_90"],
    ),
    (
        "cpu-has-archs",
        setter("targets.cpu.gpu_archs", ["sm_90"]),
        ["targets.cpu.gpu_archs[0]: cpu targets have no GPU architectures"],
    ),
    (
        "unknown-flavour",
        setter("targets.cpu.flavours", ["slimm"]),
        ["targets.cpu.flavours[0]: unknown flavour 'slimm'", 'did you mean "slim"'],
    ),
    (
        "env-not-string",
        setter("targets.rocm.env", {"HSA_FORCE_FINE_GRAIN_PCIE": 1}),
        [
            "targets.rocm.env.HSA_FORCE_FINE_GRAIN_PCIE: must be a string, got an integer 1",
            "quote it",
        ],
    ),
    (
        "env-bad-name",
        setter("targets.rocm.env", {"1BAD": "x"}),
        ["targets.rocm.env.1BAD: invalid environment variable name"],
    ),
    (
        "repository-uppercase",
        setter("project.repository", "GHCR.io/Lab/Bakery"),
        ["project.repository: invalid value 'GHCR.io/Lab/Bakery'", "lower-case"],
    ),
    (
        "uid-negative",
        setter("project.uid", -1),
        ["project.uid: must be a whole number from 0 to 65535, got -1"],
    ),
    (
        "uid-string",
        setter("project.gid", "1000"),
        ["project.gid: must be a whole number from 0 to 65535, got '1000'"],
    ),
    ("missing-index", deleter("targets.cpu.index"), ["targets.cpu.index: missing"]),
    ("missing-project", deleter("project"), ["project: missing"]),
    ("empty-torch-list", setter("targets.cpu.torch", []), ["targets.cpu.torch: must not be empty"]),
    (
        "duplicate-torch",
        setter("targets.cuda.torch", ["2.9.1", "2.9.1"]),
        ["targets.cuda.torch: lists '2.9.1' twice"],
    ),
    (
        "stack-torch-pinned",
        setter("stack", [{"python": ">=3.10", "packages": {"torch": "2.9.1"}}]),
        ["stack[0].packages.torch: the torch stack comes from the target"],
    ),
    (
        "stack-bad-specifier",
        setter("stack", [{"python": "3.11+", "packages": {"diffusers": "0.42.1"}}]),
        ["stack[0].python: invalid specifier '3.11+'"],
    ),
    (
        "stack-version-loose",
        setter("stack", [{"python": ">=3.10", "packages": {"diffusers": ">=0.40"}}]),
        ["stack[0].packages.diffusers: must be an exact version string, got '>=0.40'"],
    ),
    (
        "stack-not-covering",
        setter("stack", [{"python": ">=3.11", "packages": {"diffusers": "0.42.1"}}]),
        ["no [[stack]] entry covers Python 3.10"],
    ),
    (
        "exclude-unknown-key",
        adder("exclude", [{"targt": "rocm"}]),
        ["exclude[0].targt: unknown key", 'did you mean "target"'],
    ),
    (
        "exclude-matches-nothing",
        adder("exclude", [{"target": "rocm", "python": "3.13"}]),
        ["exclude[0]: matches no variant", "fix the values or delete the rule"],
    ),
    (
        "include-unknown-target",
        adder("include", [{"target": "roc", "torch": "2.9.1", "python": "3.11"}]),
        ["include[0].target: unknown target 'roc'", 'did you mean "rocm"'],
    ),
    (
        "include-torchvision-mismatch",
        adder(
            "include",
            [{"target": "cuda", "torch": "2.8.0", "python": "3.13", "torchvision": "0.24.0"}],
        ),
        [
            "include[0].torchvision: torchvision '0.24.0' does not pair with torch 2.8.0",
            "pairs with torchvision 0.23.0",
        ],
    ),
    (
        "include-duplicate-variant",
        adder("include", [{"target": "cpu", "torch": "2.13.0", "python": "3.11"}]),
        ["variant 2.13.0-cpu-py3.11 is defined twice"],
    ),
    (
        "include-torch-not-on-index",
        adder("include", [{"target": "rocm", "torch": "2.11.0", "python": "3.12"}]),
        ["include[0].torch[0]: torch 2.11.0 has no rocm6.3 wheels"],
    ),
    ("targets-not-table", setter("targets", ["rocm"]), ["targets: must be a table, got a list"]),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_malformed_matrix_is_reported(
    mutate: Callable[[dict[str, Any]], None], expected: list[str]
) -> None:
    rendered = "\n".join(problems_for(mutate))
    for part in expected:
        assert part in rendered, f"{part!r} not in:\n{rendered}"


def test_all_problems_are_collected_together() -> None:
    def several(data: dict[str, Any]) -> None:
        data["targets"]["rocm"]["torch"] = ["2.10.0"]
        data["targets"]["cuda"]["gpu_archs"] = ["gfx90a"]
        data["project"]["uid"] = "x"

    assert len(problems_for(several)) >= 3


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "matrix.toml"
    bad.write_text("[project\nrepository = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_matrix(bad)
    assert f"{bad}: (syntax): not valid TOML" in info.value.render()
    assert "line 1" in info.value.render()


def test_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_matrix(tmp_path / "nope.toml")
    assert "not found" in info.value.render()
    assert "--matrix" in info.value.render()


def test_default_matrix_yields_the_documented_variants() -> None:
    matrix = load_matrix(MATRIX)
    ids = {v.id for v in matrix.variants}
    full = {v for v in ids if not v.endswith("-slim")}
    assert len(full) == 3 * 3 + 3 * 3 + 1
    assert "2.9.1-cuda12.8-py3.11" in ids
    assert "2.9.1-rocm6.3-py3.11" in ids  # base-Python ROCm: no interpreter download
    assert "2.7.1-rocm6.3-py3.10" in ids
    assert "2.13.0-cpu-py3.11" in ids
    assert "2.13.0-cpu-py3.11-slim" in ids
    cpu = next(v for v in matrix.variants if v.id == "2.13.0-cpu-py3.11")
    assert cpu.companions == ()
    rocm = next(v for v in matrix.variants if v.id == "2.9.1-rocm6.3-py3.12")
    assert rocm.companions == (("torchvision", "0.24.1"),)
    assert dict(rocm.env)["TORCH_ROCM_AOTRITON_ENABLE_EXPERIMENTAL"] == "1"


def test_python_310_gets_the_last_stack_that_supports_it() -> None:
    matrix = load_matrix(MATRIX)
    by_id = {v.id: v for v in matrix.variants}
    assert dict(by_id["2.9.1-cuda12.8-py3.10"].stack)["diffusers"] == "0.41.0"
    assert dict(by_id["2.9.1-cuda12.8-py3.11"].stack)["diffusers"] == "0.42.1"
    assert dict(by_id["2.9.1-cuda12.8-py3.12"].stack)["transformers"].startswith("5.")


def test_exclude_and_include_rules_apply() -> None:
    data = base_data()
    data["exclude"] = [{"target": "cuda", "python": "3.10"}]
    data["include"] = [
        {"target": "cuda", "torch": "2.10.0", "python": "3.13", "torchvision": "0.25.0"}
    ]
    matrix = parse_matrix(data, Path("matrix.toml"))
    ids = {v.id for v in matrix.variants}
    assert not any(i.endswith("cuda12.8-py3.10") for i in ids)
    assert "2.10.0-cuda12.8-py3.13" in ids


def test_exclude_fixes_a_python_outside_the_range() -> None:
    """The fix the range error suggests works: an [[exclude]] for that torch × Python."""
    data = base_data()
    data["targets"]["cuda"]["torch"] = ["2.8.0", "2.9.1"]
    data["targets"]["cuda"]["python"] = ["3.9", "3.11"]
    with pytest.raises(ConfigError) as info:
        parse_matrix(copy.deepcopy(data), Path("matrix.toml"))
    assert (
        "targets.cuda.python[0]: Python 3.9 is outside torch 2.9.1's range" in info.value.render()
    )
    data["exclude"] = [{"target": "cuda", "torch": "2.9.1", "python": "3.9"}]
    ids = {v.id for v in parse_matrix(data, Path("matrix.toml")).variants}
    assert "2.8.0-cuda12.8-py3.9" in ids
    assert "2.9.1-cuda12.8-py3.9" not in ids


def test_empty_digest_means_a_local_base() -> None:
    data = base_data()
    data["targets"]["cpu"]["base"] = "bakery/debian:bookworm"
    data["targets"]["cpu"]["base_digest"] = ""
    cpu = next(v for v in parse_matrix(data, Path("matrix.toml")).variants if v.target == "cpu")
    assert cpu.base_ref == "bakery/debian:bookworm"


SELECTIONS = [
    ("target", Selection(targets=("rocm",)), 18),
    ("target+python", Selection(targets=("cuda",), python=("3.11",)), 6),
    ("flavour", Selection(targets=("cpu",), flavours=("slim",)), 1),
    ("glob", Selection(variants=("2.9.1-*-py3.12*",)), 4),
    ("torch", Selection(torch=("2.8.0",), flavours=("full",)), 6),
]


@pytest.mark.parametrize(
    ("selection", "count"), [s[1:] for s in SELECTIONS], ids=[s[0] for s in SELECTIONS]
)
def test_selection_flags(selection: Selection, count: int) -> None:
    assert len(select_variants(load_matrix(MATRIX), selection)) == count


def test_empty_selection_names_what_exists() -> None:
    with pytest.raises(SelectionError) as info:
        select_variants(load_matrix(MATRIX), Selection(targets=("rocm",), python=("3.13",)))
    text = info.value.render()
    assert "no variant matches --target rocm --python 3.13" in text
    assert "python 3.10, 3.11, 3.12" in text
    assert "python build.py list" in text


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        pytest.param(None, "{matrix}:{tag}", id="default-is-the-matrix-repository"),
        pytest.param("", "{matrix}:{tag}", id="empty-is-the-matrix-repository"),
        pytest.param("localhost:5000/lab/bakery", "localhost:5000/lab/bakery:{tag}", id="explicit"),
    ],
)
def test_variant_ref_is_repository_colon_tag(repository: str | None, expected: str) -> None:
    matrix = load_matrix(ROOT / "matrix.toml")
    for v in matrix.variants:
        want = expected.format(matrix=matrix.project.repository, tag=v.tag)
        assert v.ref(repository) == want
        assert v.image == v.ref()
