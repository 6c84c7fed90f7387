"""docker-bake.json: generated from the matrix, drift-checked, machine-independent, secret-free."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bakery.bake import BAKE_FILE, bake_document, render_bake, target_name
from bakery.cli import main
from bakery.matrix import load_matrix

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("matrix.toml", "Dockerfile.in", BAKE_FILE):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "images", tmp_path / "images")
    return tmp_path


def generate(project: Path, *extra: str) -> int:
    return main(
        [
            "generate",
            "--matrix",
            str(project / "matrix.toml"),
            "--template",
            str(project / "Dockerfile.in"),
            *extra,
        ]
    )


def test_committed_bake_file_matches_the_matrix() -> None:
    committed = (ROOT / BAKE_FILE).read_text(encoding="utf-8")
    assert committed == render_bake(load_matrix(ROOT / "matrix.toml"))


def test_generate_writes_the_bake_file(project: Path) -> None:
    (project / BAKE_FILE).unlink()
    assert generate(project) == 0
    written = json.loads((project / BAKE_FILE).read_text(encoding="utf-8"))
    assert written == bake_document(load_matrix(project / "matrix.toml"))


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda text: text.replace('"index"', '"pypi"', 1), "docker-bake.json: differs"),
        (lambda _text: "", "docker-bake.json: differs"),
        (None, "docker-bake.json: missing"),
    ],
    ids=["edited-default", "emptied", "deleted"],
)
def test_generate_check_fails_on_bake_drift(
    project: Path, capsys: pytest.CaptureFixture[str], edit: object, expected: str
) -> None:
    path = project / BAKE_FILE
    if callable(edit):
        path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        path.unlink()
    assert generate(project, "--check") == 1
    assert expected in capsys.readouterr().err


def test_one_target_per_variant_with_its_dockerfile_and_tag() -> None:
    matrix = load_matrix(ROOT / "matrix.toml")
    targets = bake_document(matrix)["target"]
    assert len(targets) == len(matrix.variants)
    for v in matrix.variants:
        target = targets[target_name(v.id)]
        assert target["dockerfile"] == f"images/{v.id}/Dockerfile"
        assert target["tags"] == [f"${{REPOSITORY}}:{v.tag}"]
        assert ("args" in target) == (v.flavour == "full")


def test_groups_per_target_torch_flavour_and_default() -> None:
    matrix = load_matrix(ROOT / "matrix.toml")
    groups = bake_document(matrix)["group"]
    every = {target_name(v.id) for v in matrix.variants}
    assert set(groups["default"]["targets"]) == every
    for v in matrix.variants:
        for group in (v.target, target_name(f"torch-{v.torch}"), v.flavour):
            assert target_name(v.id) in groups[group]["targets"], group
    assert set(groups["cpu"]["targets"]) == {"2_13_0-cpu-py3_11", "2_13_0-cpu-py3_11-slim"}


def test_secrets_appear_by_id_only() -> None:
    """No secret value can be in the committed file: sources are variables or env names."""
    document = bake_document(load_matrix(ROOT / "matrix.toml"))
    for target in document["target"].values():
        for secret in target["secret"]:
            fields = dict(part.split("=", 1) for part in secret.split(","))
            assert set(fields) in ({"id", "src"}, {"id", "env"}), secret
            assert fields.get("src", "${").startswith("${"), secret
    assert {v["default"] for k, v in document["variable"].items() if k.startswith("BAKERY_")} == {
        "/dev/null"
    }


@pytest.mark.parametrize(
    ("variant_id", "name"),
    [
        ("2.13.0-cpu-py3.11", "2_13_0-cpu-py3_11"),
        ("2.9.1-rocm6.3-py3.12-slim", "2_9_1-rocm6_3-py3_12-slim"),
    ],
)
def test_target_names_are_valid_bake_names(variant_id: str, name: str) -> None:
    assert target_name(variant_id) == name


def test_the_host_pip_configuration_is_written_private(tmp_path: Path) -> None:
    from bakery.bake import write_private  # noqa: PLC0415

    path = write_private(tmp_path / "pipconf", "[global]\nindex-url = https://u:p@mirror/simple\n")
    assert path.stat().st_mode & 0o777 == 0o600
