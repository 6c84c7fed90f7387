"""The command line: clear errors without tracebacks, plans without docker, honest help."""

from __future__ import annotations

from pathlib import Path

import pytest

from bakery.build import default_variant, detect_host_target, parse_base_map
from bakery.cli import main
from bakery.errors import UsageError
from bakery.matrix import load_matrix

ROOT = Path(__file__).resolve().parents[2]
MATRIX = str(ROOT / "matrix.toml")


def test_bad_matrix_gives_error_lines_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "matrix.toml"
    text = (
        (ROOT / "matrix.toml")
        .read_text(encoding="utf-8")
        .replace('torch = ["2.13.0"]', 'torch = ["2.13.9"]')
    )
    bad.write_text(text.replace("[targets.cpu]", "[targets.cpu]\nflavour = 1"), encoding="utf-8")
    assert main(["list", "--matrix", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 2 problems in the configuration")
    assert f'{bad}: targets.cpu.flavour: unknown key (did you mean "flavours"?)' in err
    assert f"{bad}: targets.cpu.torch[0]: torch 2.13.9 has no cpu wheels" in err
    assert "Traceback" not in err


def test_empty_selection_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--matrix", MATRIX, "--target", "rocm", "--torch", "2.13.0"]) == 2
    assert "error: no variant matches --target rocm --torch 2.13.0" in capsys.readouterr().err


def test_no_command_means_build_and_dry_run_prints_the_plan(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        main(
            [
                "--matrix",
                MATRIX,
                "--target",
                "cpu",
                "--flavour",
                "full",
                "--dry-run",
                "--no-host-pip",
                "--find-links",
                "/opt/wheels" if Path("/opt/wheels").is_dir() else str(ROOT),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "build plan: 1 variant(s)" in err
    assert "2.13.0-cpu-py3.11" in err
    assert "dry run: nothing was built" in err


def test_dry_run_names_the_pypi_fallback_for_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--matrix",
                MATRIX,
                "--variant",
                "2.9.1-cuda12.8-py3.11",
                "--dry-run",
                "--torch-source",
                "pypi",
                "--no-host-pip",
            ]
        )
        == 0
    )
    assert "pypi: asked for with --torch-source" in capsys.readouterr().err


def test_pypi_source_refused_where_the_build_differs(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "--matrix",
                MATRIX,
                "--variant",
                "2.7.1-cuda12.8-py3.11",
                "--dry-run",
                "--torch-source",
                "pypi",
                "--no-host-pip",
            ]
        )
        == 2
    )
    assert "PyPI's torch 2.7.1 is not the cu128 build" in capsys.readouterr().err


def test_missing_ca_file_is_refused_before_docker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.pem"
    assert (
        main(["--matrix", MATRIX, "--target", "cpu", "--dry-run", "--ca-cert", str(missing)]) == 2
    )
    assert f"error: CA bundle {missing} not found" in capsys.readouterr().err


def test_help_explains(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("list", "generate", "build", "base"):
        assert command in out


@pytest.mark.parametrize(
    ("value", "ok"), [("a=b", True), ("a", False), ("=b", False), ("a=", False)]
)
def test_base_map_parsing(value: str, ok: bool) -> None:
    if ok:
        assert parse_base_map([value]) == {"a": "b"}
    else:
        with pytest.raises(UsageError):
            parse_base_map([value])


def test_host_target_detection(tmp_path: Path) -> None:
    assert detect_host_target(tmp_path)[0] == "cpu"
    (tmp_path / "nvidiactl").touch()
    assert detect_host_target(tmp_path)[0] == "cuda"
    (tmp_path / "kfd").touch()
    assert detect_host_target(tmp_path) == ("rocm", f"{tmp_path}/kfd exists (AMD ROCm)")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param("cpu", "2.13.0-cpu-py3.11", id="cpu"),
        pytest.param("cuda", "2.9.1-cuda12.8-py3.11", id="cuda-base-python"),
        pytest.param("rocm", "2.9.1-rocm6.3-py3.11", id="rocm-base-python"),
    ],
)
def test_default_variant_is_newest_torch_base_python_full(target: str, expected: str) -> None:
    variants = load_matrix(Path(MATRIX)).variants
    assert default_variant(variants, target).id == expected


def test_default_variant_without_the_base_python_takes_the_newest_python() -> None:
    variants = [
        v for v in load_matrix(Path(MATRIX)).variants if v.target != "rocm" or v.python != "3.11"
    ]
    assert default_variant(variants, "rocm").id == "2.9.1-rocm6.3-py3.12"


def _dry_run(*selection: str) -> None:
    links = "/opt/wheels" if Path("/opt/wheels").is_dir() else str(ROOT)
    argv = ["--matrix", MATRIX, *selection, "--dry-run", "--no-host-pip", "--find-links", links]
    assert main(argv) == 0


def test_no_selection_builds_one_image_and_says_how_to_build_the_rest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _dry_run()
    err = capsys.readouterr().err
    target = detect_host_target()[0]
    count = sum(v.target == target for v in load_matrix(Path(MATRIX)).variants)
    assert "build plan: 1 variant(s)" in err
    assert f"`--target {target}` builds all {count} {target} variants" in err


def test_target_still_means_the_whole_target(capsys: pytest.CaptureFixture[str]) -> None:
    _dry_run("--target", "cpu")
    assert "build plan: 2 variant(s)" in capsys.readouterr().err


def test_list_prints_an_aligned_table_with_a_title(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--matrix", MATRIX, "--target", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"2 variants from {MATRIX}"
    header, *rows = lines[1:]
    assert header.split() == ["variant", "image", "torch", "companions", "python", "index", "built"]
    assert [row.split()[0] for row in rows] == ["2.13.0-cpu-py3.11", "2.13.0-cpu-py3.11-slim"]
    image_column = header.index("image")
    assert all(row[image_column:].startswith("ghcr.io/example-lab/bakery:") for row in rows)
