"""`build.py test` without Docker: what counts as tested, JUnit parsing, timeouts, damaged state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from bakery import engine, testrun
from bakery.cli import build_parser
from bakery.matrix import Variant, load_matrix

ROOT = Path(__file__).resolve().parents[2]


def variant(flavour: str) -> Variant:
    return next(
        v
        for v in load_matrix(ROOT / "matrix.toml").variants
        if v.target == "cpu" and v.flavour == flavour
    )


def image_info(ref: str) -> engine.ImageInfo:
    return engine.ImageInfo(
        id="sha256:" + "ab" * 32, repo_tags=(ref,), size=1, labels=MappingProxyType({}),
        env=MappingProxyType({}), cmd=None, entrypoint=None, workdir="", user="", layers=(),
    )  # fmt: skip


@pytest.fixture
def images_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "inspect_image", image_info)


def junit(tmp_path: Path, cases: list[tuple[str, str, str]]) -> Path:
    """A pytest-style JUnit file: (classname, name, outcome) with outcome passed|failed|skipped:why."""
    rows = []
    for classname, name, outcome in cases:
        body = ""
        if outcome == "failed":
            body = '<failure message="assert 1 == 2">trace</failure>'
        elif outcome.startswith("skipped:"):
            body = f'<skipped type="pytest.skip" message="{outcome[8:]}">why</skipped>'
        rows.append(f'<testcase classname="{classname}" name="{name}">{body}</testcase>')
    path = tmp_path / "junit.xml"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'<testsuites><testsuite name="pytest">{"".join(rows)}</testsuite></testsuites>',
        encoding="utf-8",
    )
    return path


PASS_ALL = [
    ("tests.image.test_probe", "test_probe_reports_the_torch_build", "passed"),
    ("tests.image.test_probe", "test_gpu_is_usable[tensor-op]", "skipped:no GPU on this host"),
    ("tests.image.test_pairing", "test_python_version", "passed"),
    ("tests.image.test_training", "test_smoke", "passed"),
]


def record(tmp_path: Path, v: Variant, cases: list[tuple[str, str, str]]) -> dict[str, list[str]]:
    results = testrun.parse_junit(v.id, junit(tmp_path, cases))
    return testrun.record_tested([v], results, None, tmp_path)


def state(tmp_path: Path) -> dict[str, Any]:
    value: dict[str, Any] = json.loads((tmp_path / testrun.STATE_FILE).read_text(encoding="utf-8"))
    return value


@pytest.mark.usefixtures("images_exist")
def test_passing_suites_with_gpu_skips_are_recorded_with_the_reasons(tmp_path: Path) -> None:
    v = variant("full")
    assert record(tmp_path, v, PASS_ALL) == {}
    (entry,) = state(tmp_path).values()
    assert entry["variant"] == v.id
    assert entry["skipped"] == {"gpu-probing": ["no GPU on this host"]}
    assert testrun.is_tested_record(entry, v.id)


@pytest.mark.usefixtures("images_exist")
def test_an_image_whose_suites_all_skipped_is_not_tested(tmp_path: Path) -> None:
    v = variant("full")
    skipped = [(c, n, "skipped:no image: docker is not running") for c, n, _ in PASS_ALL]
    untested = record(tmp_path, v, skipped)
    assert list(untested) == [v.id]
    assert "gpu-probing skipped (no image: docker is not running)" in untested[v.id]
    assert state(tmp_path) == {}


@pytest.mark.usefixtures("images_exist")
def test_a_slim_image_may_skip_only_the_suite_that_does_not_apply(tmp_path: Path) -> None:
    v = variant("slim")
    slim_cases = [*PASS_ALL[:3], ("tests.image.test_training", "test_smoke", "skipped:slim image")]
    assert record(tmp_path, v, slim_cases) == {}
    pairing_skipped = [
        PASS_ALL[0],
        ("tests.image.test_pairing", "t", "skipped:slim"),
        *slim_cases[3:],
    ]
    assert list(record(tmp_path / "again", v, pairing_skipped)) == [v.id]


@pytest.mark.usefixtures("images_exist")
def test_results_of_an_unknown_test_file_are_kept_and_count(tmp_path: Path) -> None:
    v = variant("full")
    cases = [*PASS_ALL, ("tests.image.test_extra.TestMore", "test_it", "failed")]
    results = testrun.parse_junit(v.id, junit(tmp_path, cases))
    extra = [r for r in results if r.suite == "test_extra"]
    assert [(r.status, r.failed) for r in extra] == [("failed", 1)]
    assert list(record(tmp_path, v, cases)) == [v.id]


def test_a_class_based_test_counts_for_its_file() -> None:
    assert testrun.suite_of("tests.image.test_probe.TestNodes") == "gpu-probing"
    assert testrun.suite_of("test_pairing") == "version-pairing"


@pytest.mark.usefixtures("images_exist")
@pytest.mark.parametrize(
    "damage", ['{"sha256:1": ', "[" * 100_000, "[]"], ids=["cut", "deep", "list"]
)
def test_a_damaged_state_file_is_kept_aside_not_a_traceback(
    tmp_path: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / testrun.STATE_FILE
    path.parent.mkdir(parents=True)
    path.write_text(damage, encoding="utf-8")
    assert record(tmp_path, variant("full"), PASS_ALL) == {}
    assert len(state(tmp_path)) == 1
    assert path.with_name("tested.json.damaged").read_text(encoding="utf-8") == damage
    assert f"warning: {path}" in capsys.readouterr().err.replace("\n", "")


def hanging_project(tmp_path: Path) -> Path:
    suites = tmp_path / "tests" / "image"
    suites.mkdir(parents=True)
    (suites / "conftest.py").write_text(
        "def pytest_addoption(parser):\n"
        "    parser.addoption('--variant')\n    parser.addoption('--repository')\n",
        encoding="utf-8",
    )
    (suites / "test_probe.py").write_text(
        "import threading\n\ndef test_hangs():\n    threading.Event().wait()\n", encoding="utf-8"
    )
    return tmp_path


@pytest.mark.usefixtures("images_exist")
def test_a_pytest_timeout_is_a_failed_result_not_a_traceback(tmp_path: Path) -> None:
    root = hanging_project(tmp_path)
    args = testrun.SuiteOptions(repository=None, pytest_args=(), timeout=2.0)
    results = testrun.run_variant(variant("full"), "img:1", root, root / "out", args)
    assert [r.status for r in results] == ["failed"] * len(testrun.SUITES)
    assert all(r.detail.startswith("pytest timed out after 2s") for r in results)


@pytest.mark.usefixtures("images_exist")
def test_an_interrupted_run_leaves_no_junit_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(subprocess, "Popen", interrupted)
    out = tmp_path / "out"
    out.mkdir()
    args = testrun.SuiteOptions(repository=None, pytest_args=(), timeout=60.0)
    with pytest.raises(KeyboardInterrupt):
        testrun.run_variant(variant("full"), "img:1", tmp_path, out, args)
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "soon"])
def test_timeout_must_be_a_positive_number(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["test", "--timeout", bad])
    assert (
        f"argument --timeout: '{bad}' is not a number of seconds above 0" in capsys.readouterr().err
    )


def test_run_pytest_reports_a_timeout(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import threading; threading.Event().wait()"]
    status, _ = testrun.run_pytest(command, tmp_path, 0.5)
    assert status == "timed out after 0.5s"  # and the process is gone: run_pytest waited for it
