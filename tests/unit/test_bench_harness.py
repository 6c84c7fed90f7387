"""The benchmark harness on fixed samples: medians, ratios, interleaving, result files.

Benchmarks are not tests: nothing here runs Docker or asserts a time. These check that the
numbers the harness reports are computed correctly from the samples it was given.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from bench import harness, layers, rebuild, report, tools
from bench.harness import (
    BAKERY,
    BASELINE,
    BenchResult,
    Comparison,
    Sample,
    Series,
    interleave,
    median,
    ratio,
    run_interleaved,
)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([7.0], 7.0, id="one"),
        pytest.param([3.0, 1.0, 2.0], 2.0, id="odd-unsorted"),
        pytest.param([4.0, 1.0, 3.0, 2.0], 2.5, id="even-mean-of-middle-two"),
        pytest.param([10.0, 10.0, 1000.0], 10.0, id="outlier-ignored"),
        pytest.param([1.0, 2.0], 1.5, id="two"),
        pytest.param([-1.0, 5.0, 2.0, 2.0, 9.0], 2.0, id="odd-with-ties"),
    ],
)
def test_median(values: list[float], expected: float) -> None:
    assert median(values) == expected


def test_median_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        median([])


@pytest.mark.parametrize(
    ("baseline", "bakery", "expected"),
    [
        pytest.param(10.0, 2.0, 5.0, id="bakery-five-times-better"),
        pytest.param(1.0, 4.0, 0.25, id="bakery-worse-is-below-one"),
        pytest.param(3.0, 3.0, 1.0, id="equal"),
        pytest.param(0.0, 0.0, 1.0, id="both-zero"),
        pytest.param(5.0, 0.0, None, id="bakery-zero-is-undefined-not-infinite"),
    ],
)
def test_ratio_is_baseline_over_bakery(
    baseline: float, bakery: float, expected: float | None
) -> None:
    assert ratio(baseline, bakery) == expected


def test_interleave_alternates_sides_every_repetition() -> None:
    assert interleave([BASELINE, BAKERY], 3) == [
        (0, BASELINE),
        (0, BAKERY),
        (1, BASELINE),
        (1, BAKERY),
        (2, BASELINE),
        (2, BAKERY),
    ]


def test_interleave_three_sides_and_edge_counts() -> None:
    assert interleave(["a", "b", "c"], 2) == [
        (0, "a"),
        (0, "b"),
        (0, "c"),
        (1, "a"),
        (1, "b"),
        (1, "c"),
    ]
    assert interleave(["a", "b"], 0) == []
    with pytest.raises(ValueError, match=">= 0"):
        interleave(["a"], -1)


def test_run_interleaved_calls_sides_in_order_with_repetition_numbers() -> None:
    calls: list[tuple[str, int]] = []
    run_interleaved(
        {
            BASELINE: lambda rep: calls.append((BASELINE, rep)),
            BAKERY: lambda rep: calls.append((BAKERY, rep)),
        },
        2,
        lambda _text: None,
    )
    assert calls == [(BASELINE, 0), (BAKERY, 0), (BASELINE, 1), (BAKERY, 1)]


def test_comparison_median_and_ratio_from_fixed_samples() -> None:
    c = Comparison(
        "rebuild", "s",
        Series("hand-written", [Sample(30.0), Sample(10.0), Sample(20.0)]),
        Series("bakery", [Sample(8.0), Sample(2.0), Sample(6.0), Sample(4.0)]),
    )  # fmt: skip
    assert c.baseline.median == 20.0
    assert c.bakery.median == 5.0
    assert c.ratio == 4.0
    record = c.to_json()
    assert record["ratio"] == 4.0
    assert record["better"] == "lower"
    assert "above 1 means bakery is better" in record["ratio_meaning"]
    assert record[BASELINE]["samples"] == [30.0, 10.0, 20.0]  # raw, in measured order
    assert (record[BAKERY]["min"], record[BAKERY]["max"]) == (2.0, 8.0)


def test_comparison_without_samples_has_no_ratio() -> None:
    c = Comparison("x", "s", Series("a"), Series("b", [Sample(1.0)]))
    assert c.ratio is None
    assert c.to_json()["ratio"] is None
    assert c.to_json()[BASELINE]["median"] is None


def test_bench_result_json_shape() -> None:
    result = BenchResult("rebuild", "Rebuild", method="how")
    c = result.compare("wall", "s", "hand-written", "bakery", note="n")
    c.baseline.samples.append(Sample(9.0, {"steps_run": ["a", "b"]}))
    c.bakery.samples.append(Sample(3.0))
    result.add_value("first build", 12.5, "s")
    record = result.to_json()
    assert record["status"] == harness.STATUS_OK
    assert record["comparisons"][0]["ratio"] == 3.0
    assert record["comparisons"][0][BASELINE]["extra"] == [{"steps_run": ["a", "b"]}]
    assert record["values"] == [{"name": "first build", "value": 12.5, "unit": "s", "note": ""}]
    json.dumps(record)  # serialisable as is


def test_write_json_atomic_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "results" / "quick.json"
    harness.write_json_atomic(target, {"schema": harness.SCHEMA, "n": 1})
    harness.write_json_atomic(target, {"schema": harness.SCHEMA, "n": 2})
    assert json.loads(target.read_text(encoding="utf-8"))["n"] == 2
    assert os.listdir(target.parent) == ["quick.json"]
    assert harness.read_results(target)["n"] == 2


def test_read_results_refuses_other_json(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"schema": "something-else"}', encoding="utf-8")
    with pytest.raises(ValueError, match="not a bakery-bench"):
        harness.read_results(path)


def test_memory_from_meminfo() -> None:
    assert harness.memory_bytes("MemFree: 1 kB\nMemTotal:  2048 kB\n") == 2048 * 1024
    assert harness.memory_bytes("") is None


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        pytest.param(1_360_000_000.0, "B", "1.36 GB", id="gigabytes"),
        pytest.param(2_500_000.0, "B", "2.50 MB", id="megabytes"),
        pytest.param(3.14159, "s", "3.14 s", id="seconds"),
        pytest.param(244.07, "s", "244.1 s", id="long-seconds"),
        pytest.param(None, "s", "—", id="missing"),
    ],
)
def test_report_formats_values(value: float | None, unit: str, text: str) -> None:
    assert report.fmt(value, unit) == text


def test_report_ratio_column() -> None:
    assert report.fmt_ratio(7714.43) == "**7714×**"
    assert report.fmt_ratio(14.65) == "**14.7×**"
    assert report.fmt_ratio(1.0168) == "**1.02×**"
    assert report.fmt_ratio(None) == "—"


def test_report_escapes_pipes_in_table_cells() -> None:
    assert report.cell("docker save | gzip") == "docker save \\| gzip"


# Layer stacking (bench/layers.py): the waste benchmark's shadowed/duplicate accounting.


def _layer(*entries: layers.Entry) -> layers.Layer:
    return layers.Layer(list(entries))


def test_layers_whiteout_and_replacement_are_shadowed_bytes() -> None:
    fs = layers.apply_layers([
        _layer(layers.Entry("etc", 0, is_dir=True), layers.Entry("etc/a", 100), layers.Entry("etc/b", 50)),
        _layer(layers.Entry("etc/a", 30), layers.Entry("etc/.wh.b", 0)),
    ])  # fmt: skip
    assert fs.stored == 180
    assert fs.visible == 30
    assert fs.shadowed == 150
    assert sorted(fs.files) == ["etc", "etc/a"]
    assert fs.top_hidden() == [("etc/a", 100), ("etc/b", 50)]


def test_layers_opaque_directory_hides_only_lower_content() -> None:
    fs = layers.apply_layers([
        _layer(layers.Entry("d", 0, is_dir=True), layers.Entry("d/old", 10), layers.Entry("e", 5)),
        _layer(layers.Entry("d", 0, is_dir=True), layers.Entry("d/.wh..wh..opq", 0), layers.Entry("d/new", 7)),
    ])  # fmt: skip
    assert sorted(fs.files) == ["d", "d/new", "e"]
    assert fs.shadowed == 10


def test_layers_whiteout_of_a_directory_removes_its_tree() -> None:
    fs = layers.apply_layers([
        _layer(layers.Entry("c", 0, is_dir=True), layers.Entry("c/pip", 0, is_dir=True),
               layers.Entry("c/pip/x", 40), layers.Entry("c/keep", 1)),
        _layer(layers.Entry("c/.wh.pip", 0)),
    ])  # fmt: skip
    assert sorted(fs.files) == ["c", "c/keep"]
    assert fs.shadowed == 40


def test_layers_duplicates_count_extra_copies_only() -> None:
    fs = layers.apply_layers([
        _layer(layers.Entry("a", 100, "h1"), layers.Entry("b", 100, "h1"), layers.Entry("c", 100, "h1"),
               layers.Entry("d", 100, "h2")),
    ])  # fmt: skip
    assert fs.duplicate_bytes() == (200, 2)
    assert fs.matching("/a") == 100
    assert fs.under(["a", "d"]) == 200


def test_layers_shadowed_bytes_by_the_layer_that_stored_them() -> None:
    fs = layers.apply_layers([
        _layer(layers.Entry("base", 100)),
        _layer(layers.Entry("base", 10), layers.Entry("tool", 40)),
        _layer(layers.Entry("tool", 45)),
    ])  # fmt: skip
    assert fs.shadowed == 140
    assert fs.shadowed_from(1) == 40  # above the base: only the replaced "tool"
    assert {p: e.layer for p, e in fs.files.items()} == {"base": 1, "tool": 2}
    assert fs.top_hidden(from_layer=1) == [("tool", 40)]


def _step_index(dockerfile: str, prefix: str) -> int:
    lines = dockerfile.splitlines()
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


def test_rebuild_baselines_differ_only_in_where_the_code_is_copied() -> None:
    tutorial = rebuild.handwritten_dockerfile(order=rebuild.TUTORIAL)
    ordered = rebuild.handwritten_dockerfile(order=rebuild.WELL_ORDERED)
    code, install = "COPY . /workspace", "RUN --mount=type=secret,id=ca"
    assert _step_index(tutorial, code) < _step_index(tutorial, install)
    assert _step_index(ordered, "COPY requirements.txt") < _step_index(ordered, install)
    assert _step_index(ordered, install) < _step_index(ordered, code)
    assert "type=cache" not in ordered, "the well-ordered baseline has no cache mounts"
    body = [ln for ln in ordered.splitlines() if not ln.startswith("#")]
    assert sorted(body) == sorted(
        [ln for ln in tutorial.splitlines() if not ln.startswith("#")]
        + ["COPY requirements.txt /workspace/requirements.txt"]
    )


def test_rebuild_baseline_order_must_be_known() -> None:
    with pytest.raises(ValueError, match="well-ordered"):
        rebuild.handwritten_dockerfile(order="random")


def test_a_partial_run_never_replaces_a_complete_result_file(tmp_path: Path) -> None:
    output = tmp_path / "full-2026-11-29.json"
    complete = {"schema": harness.SCHEMA, "benchmarks": {"rebuild": {"status": "ok"}}}
    harness.publish_results(output, complete)
    before = output.read_bytes()
    partial = harness.save_progress(output, {"schema": harness.SCHEMA, "benchmarks": {}})
    assert partial == tmp_path / "full-2026-11-29.partial.json"
    assert output.read_bytes() == before
    assert harness.read_results(partial)["benchmarks"] == {}
    harness.publish_results(output, {**complete, "n": 2})
    assert harness.read_results(output)["n"] == 2
    assert not partial.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full-2026-11-29.json"]


def test_report_latest_ignores_partial_files(tmp_path: Path) -> None:
    harness.write_json_atomic(tmp_path / "quick-1.json", {"schema": harness.SCHEMA})
    harness.save_progress(tmp_path / "quick-2.json", {"schema": harness.SCHEMA})
    assert report.latest(tmp_path) == tmp_path / "quick-1.json"


@pytest.mark.parametrize(
    ("found", "complete"),
    [
        pytest.param({"a": "ok", "b": "skipped"}, True, id="all-reported"),
        pytest.param({"a": "ok"}, False, id="one-missing-interrupted"),
        pytest.param({"a": "ok", "b": "failed"}, False, id="one-failed"),
        pytest.param({"a": "ok", "b": "pending", "c": "ok"}, True, id="extra-is-fine"),
    ],
)
def test_run_is_complete(found: dict[str, str], complete: bool) -> None:
    data = {"benchmarks": {name: {"status": status} for name, status in found.items()}}
    assert harness.run_is_complete(data, ["a", "b"]) is complete


def test_disk_shortfalls_name_each_short_folder() -> None:
    free = {Path("/var/lib/docker"): 5_000_000_000, Path("/root/.cache"): 80_000_000_000}
    assert tools.disk_shortfalls(free, 20_000_000_000) == [
        "/var/lib/docker has 5.0 GB free, the run needs 20.0 GB"
    ]
    assert tools.disk_shortfalls(free, 1_000_000_000) == []


def test_cache_ids_from_buildx_du_verbose() -> None:
    text = (
        "ID:\t\tit0xnogcwie5vyj52hi2838q1\nParent:\t\tke5uth492s3oke1nwj5q47dvm\n"
        "Description:\tmount / from exec /bin/sh -c echo ID: x\n\n"
        "ID:\t\tsuffh0gqp07g8u92q5gam7ndq*\nType:\t\tsource.local\n"
    )
    assert tools.parse_cache_ids(text) == {
        "it0xnogcwie5vyj52hi2838q1",
        "suffh0gqp07g8u92q5gam7ndq",
    }


def _result_with(comparisons: list[tuple[str, str, float | None]]) -> dict[str, object]:
    return {
        "mode": "quick",
        "created": "2026-11-29T14:00:00Z",
        "benchmarks": {
            "rebuild": {
                "status": "ok",
                "comparisons": [
                    {"name": name, "unit": unit, "ratio": r} for name, unit, r in comparisons
                ],
            },
            "variant": {
                "status": "failed",
                "comparisons": [{"name": "x", "unit": "s", "ratio": 9}],
            },
        },
    }


def test_chart_has_one_panel_per_unit_in_a_fixed_order() -> None:
    data = _result_with(
        [("new layer bytes", "B", 3.0), ("steps re-run", "steps", 1.0), ("wall", "s", 0.5),
         ("layers shared", "layers", 2.0), ("no ratio", "s", None)]
    )  # fmt: skip
    rows = report.chart_rows(data)
    assert list(rows) == ["seconds", "bytes", "counts"]
    assert rows["seconds"] == [("rebuild: wall", 0.5)]
    assert [r for _, r in rows["counts"]] == [1.0, 2.0]


def test_chart_labels_wrap_and_panels_without_bars_are_left_out() -> None:
    long_name = "rebuild wall time (vs well-ordered Dockerfile) on a loaded machine"
    rows = report.chart_rows(_result_with([(long_name, "s", 2.0)]))
    assert list(rows) == ["seconds"]
    label = rows["seconds"][0][0]
    assert "\n" in label
    assert all(len(line) <= report.LABEL_WIDTH for line in label.splitlines())


@pytest.mark.parametrize("ratios", [[1.0], [0.12, 1.0, 12815.0], [0.9, 1.1]])
def test_every_bar_has_length_including_one(ratios: list[float]) -> None:
    floor = report.axis_floor(ratios)
    assert floor < min(ratios)
    assert floor < 1.0
    for r in ratios:
        left, width = report.bar_span(r, floor)
        assert left == floor
        assert left + width == pytest.approx(r)
        assert width > 0


def test_chart_png_renders_a_png() -> None:
    pytest.importorskip("matplotlib", reason="the chart needs the bench extra (matplotlib)")
    png = report.chart_png(_result_with([("wall", "s", 1.0), ("bytes", "B", 2.0)]))
    assert png.startswith(b"\x89PNG")


def test_the_pin_change_edits_the_cpu_variants_stack_and_requirements(tmp_path: Path) -> None:
    matrix = tmp_path / "matrix.toml"
    matrix.write_text((tools.ROOT / "matrix.toml").read_text(encoding="utf-8"), encoding="utf-8")
    rebuild._set_matrix_pin(matrix, "pillow", "11.0.0")
    stacks = tomllib.loads(matrix.read_text(encoding="utf-8"))["stack"]
    assert [s["packages"]["pillow"] for s in stacks] == ["11.0.0", "12.3.0"]  # only >=3.11
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("torch==2.13.0+cpu\npillow==13.0.0\n", encoding="utf-8")
    rebuild._set_requirement(requirements, "pillow", "12.3.0")
    assert requirements.read_text(encoding="utf-8") == "torch==2.13.0+cpu\npillow==12.3.0\n"
    with pytest.raises(tools.BenchError, match="no nothing== line"):
        rebuild._set_requirement(requirements, "nothing", "1")


def test_goal_rows_say_met_or_not_from_the_results() -> None:
    def comparison(name: str, ratio: float) -> dict[str, object]:
        return {"name": name, "ratio": ratio}

    data = {
        "benchmarks": {
            "enter": {"comparisons": [comparison("latency of `true`", 0.9),
                                      comparison("start-up: build.py --help", 0.2)], "values": []},
            "variant": {"comparisons": [comparison("second variant bytes downloaded: pip vs uv", 1e5)],
                        "values": []},
            "sharing": {"comparisons": [], "values": [
                {"name": "shared by a and a-slim", "value": 96.0, "unit": "%", "note": "goal 4: >= 95 %"}]},
        }
    }  # fmt: skip
    rows = "\n".join(report.goal_rows(data))
    assert (
        "| 1. `enter` ≤ 1.3× `docker exec` | ratio 0.90 (bakery takes 1.11× the baseline) | yes |"
        in rows
    )
    assert (
        "| 1. `--help` ≤ 3× `python3 -c pass` | ratio 0.20 (bakery takes 5.00× the baseline) | no |"
        in rows
    )
    assert "0.001 % (uv vs pip) | yes |" in rows
    assert "shared by a and a-slim ≥ 95 % | 96.0 % | yes |" in rows
    assert (
        "| 2. pin-change rebuild ≥ 3× faster than the well-ordered Dockerfile | not measured in this run | — |"
        in rows
    )


def test_a_project_copy_passes_generate_check(tmp_path: Path) -> None:
    """The rebuild benchmark's copy holds everything `generate --check` compares (the bake file
    beside images/ was once left out, and the full run failed at its first step)."""
    copy = tools.copy_project(tmp_path / "copy")
    assert (copy / "docker-bake.json").is_file()
