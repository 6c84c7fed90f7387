"""Render docs/benchmarks.md and docs/benchmarks.png from a result JSON (never from live runs)."""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import PARTIAL_SUFFIX, RATIO_MEANING, write_bytes_atomic

SAME_LOW, SAME_HIGH = 0.9, 1.1  # chart: ratios in between are drawn grey ("about the same")
ORDER = ("rebuild", "variant", "offline", "compression", "waste", "sharing", "enter")


def latest(results: Path) -> Path:
    files = sorted(
        (p for p in results.glob("*.json") if not p.name.endswith(PARTIAL_SUFFIX)),
        key=lambda p: p.stat().st_mtime,
    )
    if not files:
        raise FileNotFoundError(f"no result files in {results}")
    return files[-1]


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit == "B":
        for step, suffix in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if abs(value) >= step:
                return f"{value / step:.2f} {suffix}"
        return f"{value:.0f} B"
    if unit == "s":
        return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
    if unit == "x":
        return f"{value:.2f}×"
    if unit == "%":
        return f"{value:.1f} %"
    if unit in ("steps", "layers"):
        return f"{value:.0f}"
    return f"{value:g} {unit}"


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"**{value:.0f}×**"
    return f"**{value:.1f}×**" if value >= 10 else f"**{value:.2f}×**"


def cell(text: object) -> str:
    """Table-cell text: a `|` inside (as in `docker save | gzip`) would split the cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _benchmarks(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = data["benchmarks"]
    return [(n, found[n]) for n in (*ORDER, *sorted(set(found) - set(ORDER))) if n in found]


def summary_rows(data: dict[str, Any]) -> list[str]:
    rows = [
        "| benchmark | metric | baseline | bakery | baseline / bakery | n |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, bench in _benchmarks(data):
        if bench["status"] != "ok":
            rows.append(f"| {name} | {bench['status']}: {cell(bench['reason'])} | | | | |")
            continue
        for c in bench["comparisons"]:
            b, k = c["baseline"], c["bakery"]
            n = max(len(b["samples"]), len(k["samples"]))
            rows.append(
                f"| {name} | {cell(c['name'])} | {cell(b['label'])}: {fmt(b['median'], c['unit'])} "
                f"| {cell(k['label'])}: {fmt(k['median'], c['unit'])} | {fmt_ratio(c['ratio'])} | {n} |"
            )
    return rows


def machine_rows(data: dict[str, Any]) -> list[str]:
    m = data["machine"]
    memory = f"{m['memory_bytes'] / 2**30:.0f} GiB" if m.get("memory_bytes") else "?"
    load_after = data.get("load_average_after") or []
    facts = [
        ("measured", f"{data['created']} ({data['mode']} mode, `{' '.join(data['command'])}`)"),
        ("machine", f"{m['cores']} cores ({m.get('cpu_model') or '?'}), {memory}, {m.get('os')}"),
        ("kernel", m["kernel"]),
        ("Docker", f"engine {m['docker_server']}, {m['buildx']}, {m['storage_driver']}"),
        ("compressors", f"{m['zstd']}; {m['gzip']}"),
        ("load average", f"{m['load_average']} at the start, {load_after} at the end"),
        (
            "bakery",
            f"{m['bakery_commit'][:12]}{' + uncommitted changes' if m['bakery_worktree_dirty'] else ''}",
        ),
    ]
    return ["| | |", "| --- | --- |", *(f"| {k} | {cell(v)} |" for k, v in facts)]


def loaded(data: dict[str, Any]) -> bool:
    m = data["machine"]
    loads = [*m.get("load_average", []), *(data.get("load_average_after") or [])]
    return bool(m.get("cores")) and any(x > m["cores"] for x in loads)


def section(name: str, bench: dict[str, Any]) -> list[str]:
    lines = [f"### {name}: {bench['title']}", ""]
    if bench["status"] != "ok":
        lines += [f"**{bench['status']}**: {bench['reason']}", ""]
    if bench.get("method"):
        lines += [
            "<details><summary>method</summary>",
            "",
            bench["method"].strip(),
            "",
            "</details>",
            "",
        ]
    if bench["comparisons"]:
        lines += [
            "| metric | baseline samples | bakery samples | ratio |",
            "| --- | --- | --- | --- |",
        ]
        for c in bench["comparisons"]:
            unit = c["unit"]
            b = ", ".join(fmt(v, unit) for v in c["baseline"]["samples"])
            k = ", ".join(fmt(v, unit) for v in c["bakery"]["samples"])
            note = f" — {c['note']}" if c.get("note") else ""
            lines.append(
                f"| {cell(c['name'] + note)} | {cell(c['baseline']['label'])}: {b} "
                f"| {cell(c['bakery']['label'])}: {k} | {fmt_ratio(c['ratio'])} |"
            )
        lines.append("")
    breakdown = bench.get("params", {}).get("breakdown")
    if breakdown:
        lines += breakdown_table(breakdown)
    elif bench["values"]:
        lines += ["| value | measured | note |", "| --- | --- | --- |"]
        lines += [
            f"| {cell(v['name'])} | {fmt(v['value'], v['unit'])} | {cell(v.get('note', ''))} |"
            for v in bench["values"]
        ]
        lines.append("")
    lines += [f"- {note}" for note in bench.get("notes", [])]
    for key, title in (
        ("baseline_dockerfile", "The tutorial baseline Dockerfile"),
        ("well_ordered_dockerfile", "The well-ordered baseline Dockerfile"),
    ):
        if name == "rebuild" and key in bench.get("params", {}):
            lines += ["", f"{title}:", "", "```dockerfile", bench["params"][key].rstrip(), "```"]
    lines += ["", f"{bench['seconds']:.0f} s for this benchmark.", ""]
    return lines


BREAKDOWN_ROWS = (
    ("stored", "image (bytes in its layers)", "B"),
    ("base", "base image", "B"),
    ("python_packages", "Python packages (site-packages)", "B"),
    ("everything_else", "everything else (apt packages, Python, code)", "B"),
    ("pip_cache", "waste: pip cache", "B"),
    ("apt_lists_and_cache", "waste: apt lists and cache", "B"),
    ("shadowed", "waste: shadowed by later layers", "B"),
    ("duplicates", "waste: duplicate copies (inside the rows above)", "B"),
    ("waste", "waste, total", "B"),
    ("size_over_base_and_packages", "image / (base + Python packages)", "x"),
)


def breakdown_table(breakdown: dict[str, dict[str, Any]]) -> list[str]:
    """Images as columns, the byte accounting as rows (the waste benchmark)."""
    names = list(breakdown)
    lines = [
        "| | " + " | ".join(cell(n) for n in names) + " |",
        "| --- |" + " --- |" * len(names),
    ]
    for key, label, unit in BREAKDOWN_ROWS:
        values = " | ".join(fmt(breakdown[n].get(key), unit) for n in names)
        lines.append(f"| {label} | {values} |")
    tops = [
        f"{n}: "
        + ", ".join(f"{p} ({fmt(b, 'B')})" for p, b in breakdown[n].get("shadowed_top", [])[:3])
        for n in names
        if breakdown[n].get("shadowed_top")
    ]
    lines.append("")
    lines += [f"- largest shadowed files, {t}" for t in tops]
    return [*lines, ""]


def markdown(data: dict[str, Any], source: str, chart: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by `python -m bench report` from the JSON named below; do not edit. -->",
        "",
        "bakery side by side with what users do today, each pair measured in one run, repeated,",
        "interleaved (baseline, bakery, baseline, bakery, …) so drift hits both sides; medians and",
        f"ratios reported. Ratio = {RATIO_MEANING}. Raw samples, machine facts and the exact method",
        f"are in [`{source}`]({source}).",
        "",
        "Rerun: `python -m bench --quick` (all), `python -m bench rebuild` (one; names: "
        + ", ".join(f"`{n}`" for n in ORDER)
        + "), `python -m bench report FILE.json` (this page from a result file).",
        "",
    ]
    if loaded(data):
        lines += [
            f"> **Measured on a loaded {data['machine']['cores']}-core machine** (other builds and tests "
            "ran at the same time; see the load average below). Absolute times are noisy and "
            "pessimistic; the ratios come from interleaved pairs and are the figures to compare.",
            "",
        ]
    if data["mode"] == "quick":
        lines += [
            "> Quick mode: few repetitions (a median of 1–5 samples) and, for the pip-cache "
            "benchmark, only the part of the stack that does not pull torch. `python -m bench` "
            "runs the full set.",
            "",
        ]
    lines += ["## Results", "", *summary_rows(data), "", f"![ratios]({chart})", ""]
    lines += ["## Issue 17's goals", "", *goal_rows(data), ""]
    lines += ["## Machine", "", *machine_rows(data), "", "## Details", ""]
    for name, bench in _benchmarks(data):
        lines += section(name, bench)
    return "\n".join(lines).rstrip() + "\n"


# Issue 17's goals: (goal, benchmark, comparison or value name, kind, limit). "ratio": the
# comparison's baseline/bakery ratio must be at least `limit`; "value": the value at most (max)
# or at least (min) `limit`; "share": bakery's bytes as a share of the baseline's, at most limit.
GOALS: tuple[tuple[str, str, str, str, float], ...] = (
    ("1. `enter` ≤ 1.3× `docker exec`", "enter", "latency of `true`", "ratio", 1 / 1.3),
    ("1. `--help` ≤ 3× `python3 -c pass`", "enter", "start-up: build.py --help", "ratio", 1 / 3),
    ("1. `list` ≤ 3× `python3 -c pass`", "enter", "start-up: build.py list", "ratio", 1 / 3),
    ("1. `generate --check` ≤ 3× `python3 -c pass`", "enter",
     "start-up: build.py generate --check", "ratio", 1 / 3),
    ("2. code-change rebuild ≤ 1.5× bakery's own buildx build", "rebuild",
     "bakery's rebuild wall time / its own buildx build (medians)", "value max", 1.5),
    ("2. code-change rebuild ≤ 1.25× the well-ordered Dockerfile", "rebuild",
     "rebuild wall time (vs well-ordered Dockerfile)", "ratio", 1 / 1.25),
    ("2. pin-change rebuild ≥ 3× faster than the well-ordered Dockerfile", "rebuild",
     "rebuild after one pin change (pillow)", "ratio", 3.0),
    ("3. second variant downloads ≤ 5 % of the first's", "variant",
     "second variant bytes downloaded: pip vs uv", "share", 0.05),
)  # fmt: skip


def goal_rows(data: dict[str, Any]) -> list[str]:
    """One row per goal: the measured figure from this result file, and met or not."""
    benches = dict(_benchmarks(data))
    rows = ["| goal | measured | met |", "| --- | --- | --- |"]
    for goal, bench_name, name, kind, limit in GOALS:
        figure, met = _goal_figure(benches.get(bench_name), name, kind, limit)
        rows.append(f"| {cell(goal)} | {cell(figure)} | {met} |")
    sharing = benches.get("sharing")
    for v in (sharing or {}).get("values", []):
        if v["name"].startswith("shared by") and "goal 4" in v.get("note", ""):
            rows.append(
                f"| {cell('4. ' + v['name'] + ' ≥ 95 %')} | {fmt(v['value'], '%')} "
                f"| {'yes' if v['value'] >= 95 else 'no'} |"
            )
    return rows


def _goal_figure(
    bench: dict[str, Any] | None, name: str, kind: str, limit: float
) -> tuple[str, str]:
    if bench is None:
        return "not measured in this run", "—"
    if kind.startswith("value"):
        value = next((v["value"] for v in bench["values"] if v["name"] == name), None)
        if value is None:
            return "not measured", "—"
        met = value <= limit if kind == "value max" else value >= limit
        return f"{value:.2f}×", "yes" if met else "no"
    comparison = next((c for c in bench["comparisons"] if c["name"] == name), None)
    if comparison is None or comparison.get("ratio") in (None, 0):
        return "not measured", "—"
    ratio = float(comparison["ratio"])
    if kind == "share":
        share = 1 / ratio
        return f"{100 * share:.3f} % (uv vs pip)", "yes" if share <= limit else "no"
    figure = f"ratio {ratio:.2f} (bakery takes {1 / ratio:.2f}× the baseline)"
    return figure, "yes" if ratio >= limit else "no"


PANELS = ("seconds", "bytes", "counts")  # one chart panel per unit, in this order
LABEL_WIDTH = 44  # characters per line of a bar's label before it wraps


def panel_of(unit: str) -> str:
    """The chart panel of a comparison's unit: seconds, bytes, or counts (steps, layers, …)."""
    return {"s": "seconds", "B": "bytes"}.get(unit, "counts")


def chart_rows(data: dict[str, Any]) -> dict[str, list[tuple[str, float]]]:
    """(label, ratio) bars per panel, panels without bars left out; labels wrapped to fit."""
    rows: dict[str, list[tuple[str, float]]] = {panel: [] for panel in PANELS}
    for name, bench in _benchmarks(data):
        for c in bench["comparisons"] if bench["status"] == "ok" else []:
            if c["ratio"] is not None and c["ratio"] > 0:
                label = textwrap.fill(f"{name}: {c['name']}", LABEL_WIDTH)
                rows[panel_of(c["unit"])].append((label, float(c["ratio"])))
    return {panel: bars for panel, bars in rows.items() if bars}


def axis_floor(ratios: Sequence[float]) -> float:
    """The left end of the log axis: below every ratio and below 1, so every bar has length."""
    return min(0.5, *(r / 2 for r in ratios))


def bar_span(ratio: float, floor: float) -> tuple[float, float]:
    """(left, width) of a bar drawn from the axis floor to the ratio: a 1.0× bar is visible."""
    return floor, ratio - floor


def chart_png(data: dict[str, Any]) -> bytes:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = chart_rows(data) or {"counts": []}
    ratios = [r for bars in panels.values() for _, r in bars] or [1.0]
    heights = [max(2, len(bars)) for bars in panels.values()]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(10, 0.5 * sum(heights) + 1.4 * len(panels)),
        gridspec_kw={"height_ratios": heights}, squeeze=False, sharex=True,
    )  # fmt: skip
    floor, ceiling = axis_floor(ratios), max(2.0, *ratios) * 4
    for ax, (panel, bars) in zip(axes[:, 0], panels.items(), strict=True):
        _draw_panel(ax, panel, bars, floor)
        ax.set_xlim(floor, ceiling)
    axes[-1, 0].set_xlabel(
        "baseline / bakery (log scale; > 1: bakery is better; grey: within 10 %)"
    )
    fig.suptitle(f"bakery vs what users do today — {data['mode']} run {data['created'][:10]}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def _draw_panel(ax: Any, panel: str, bars: Sequence[tuple[str, float]], floor: float) -> None:
    positions = list(range(len(bars)))[::-1]
    for y, (_, r) in zip(positions, bars, strict=True):
        left, width = bar_span(r, floor)
        ax.barh(y, width, left=left, color=_color(r), height=0.6)
        ax.text(r, y, f" {r:.2f}×" if r < 10 else f" {r:.0f}×", va="center", fontsize=8)
    ax.set_yticks(positions, [label for label, _ in bars], fontsize=8)
    ax.set_ylim(-0.6, max(len(bars), 2) - 0.4)  # the same bar thickness in every panel
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_title(panel, loc="left", fontsize=9)


def _color(r: float) -> str:
    if r > SAME_HIGH:
        return "#2b8a3e"  # bakery better
    if r < SAME_LOW:
        return "#c92a2a"  # bakery worse
    return "#868e96"  # within ±10 %: no difference worth a colour


def render(data: dict[str, Any], source: Path, doc: Path, chart: Path) -> None:
    """Write the page and the chart (each atomically) from one result file's data."""
    relative = os.path.relpath(source, doc.parent)
    text = markdown(data, relative, chart.name)
    write_bytes_atomic(chart, chart_png(data))
    write_bytes_atomic(doc, text.encode("utf-8"))
