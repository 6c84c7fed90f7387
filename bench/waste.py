"""5. Image waste: image size vs the base image plus the installed Python packages.

Each image is read from a `docker save` stream (bench/layers.py): every layer's files, then the
final filesystem after whiteouts. Waste is what an image stores that a training run never uses:

- pip cache:  files under root/.cache/pip and home/*/.cache/pip
- apt lists and cache: var/lib/apt/lists, var/cache/apt
- shadowed: bytes stored in a layer above the base and deleted or replaced by a later one
  (they still ship in every pull and bundle)
- duplicates: identical content (files >= 64 KiB) under more than one path in the final image
  (extra copies only; they sit inside the other categories, mostly the Python packages)

"Base" is the image's base layers (bakery/debian:bookworm, a prefix of the image's layers);
"Python packages" are the final files under */site-packages/ above the base. What remains
(apt packages, Python itself, the training code) is "everything else"; base + Python packages +
pip cache + apt + shadowed + everything else add up to the image's stored bytes exactly. Sizes are the bytes of the
files in the layer tars (what `docker save` ships); Docker's own `Size` is reported beside them.

Compared side by side: bakery's cpu image and the hand-written Dockerfile's image (bench/rebuild.py)
with the same base and packages. The cuda image has no hand-written counterpart here (it would
need another 3.5 GB of wheels); its breakdown is reported alone.
"""

from __future__ import annotations

from typing import Any

from bench import layers, rebuild, tools
from bench.harness import STATUS_SKIPPED, BenchResult, Sample
from bench.tools import CPU_VARIANT, CUDA_VARIANT, Context

NAME = "waste"
TITLE = "Image waste: size vs base + Python packages"
PIP_CACHE = ("root/.cache/pip",)
APT = ("var/lib/apt/lists", "var/cache/apt")


def category(path: str) -> str:
    """Where a final file belongs: pip cache, apt, python packages, or other."""
    if any((path + "/").startswith(p + "/") for p in PIP_CACHE) or (
        path.startswith("home/") and "/.cache/pip/" in path
    ):
        return "pip_cache"
    if any((path + "/").startswith(p + "/") for p in APT):
        return "apt_lists_and_cache"
    if "/site-packages/" in "/" + path:
        return "python_packages"
    return "other"


def breakdown(ref: str, base: str) -> dict[str, Any]:
    """Split an image's stored bytes: base image, Python packages, waste, everything else.

    stored = base + python_packages + pip_cache + apt + shadowed (above the base) + other,
    exactly; duplicates are extra copies inside those (mostly inside python_packages).
    """
    facts = tools.image_facts(ref)
    base_facts = tools.image_facts(base)
    if facts is None:
        raise tools.BenchError(f"{ref} is not built here")
    fs = layers.analyse_image(ref)
    k = 0
    if base_facts is not None and facts.layers[: len(base_facts.layers)] == base_facts.layers:
        k = len(base_facts.layers)
    parts = dict.fromkeys(("python_packages", "pip_cache", "apt_lists_and_cache", "other"), 0)
    for path, entry in fs.files.items():
        if entry.layer >= k:
            parts[category(path)] += entry.size
    base_bytes = sum(fs.layer_bytes[:k])
    shadowed = fs.shadowed_from(k)
    duplicates, duplicate_files = fs.duplicate_bytes()
    if base_bytes + sum(parts.values()) + shadowed != fs.stored:
        raise tools.BenchError(f"{ref}: the byte accounting does not add up")
    packages = parts["python_packages"]
    waste = parts["pip_cache"] + parts["apt_lists_and_cache"] + shadowed + duplicates
    return {
        "ref": ref,
        "id": facts.id,
        "docker_size": facts.size,
        "stored": fs.stored,
        "base": base_bytes,
        "base_layers": k,
        "layers": len(fs.layer_bytes),
        "python_packages": packages,
        "pip_cache": parts["pip_cache"],
        "apt_lists_and_cache": parts["apt_lists_and_cache"],
        "shadowed": shadowed,
        "shadowed_top": fs.top_hidden(5, from_layer=k),
        "duplicates": duplicates,
        "duplicate_files": duplicate_files,
        "waste": waste,
        "extra_over_base_and_packages": fs.stored - base_bytes - packages,
        "everything_else": parts["other"],
        "size_over_base_and_packages": fs.stored / max(1, base_bytes + packages),
    }


def run(ctx: Context) -> BenchResult:
    result = BenchResult(NAME, TITLE, method=__doc__ or "")
    from bakery.matrix import load_matrix  # noqa: PLC0415

    repository = load_matrix(ctx.root / "matrix.toml").project.repository
    images = {
        "bakery cpu": f"{repository}:{CPU_VARIANT}",
        "bakery cuda": f"{repository}:{CUDA_VARIANT}",
    }
    present = {k: v for k, v in images.items() if tools.image_facts(v) is not None}
    if "bakery cpu" not in present:
        result.status = STATUS_SKIPPED
        result.reason = f"{images['bakery cpu']} is not built here"
        return result
    missing = sorted(set(images) - set(present))
    if missing:
        result.notes.append(
            f"not built here, so not measured: {', '.join(images[m] for m in missing)}"
        )
    ctx.log("waste: the hand-written baseline image")
    present["hand-written cpu"] = rebuild.handwritten_image(ctx)
    rows = {}
    for label, ref in present.items():
        ctx.log(f"waste: reading {ref}")
        rows[label] = breakdown(ref, tools.BASE_IMAGE)
    result.params = {"images": present, "breakdown": rows}
    for label, row in rows.items():
        for key in ("docker_size", "stored", "base", "python_packages", "pip_cache",
                    "apt_lists_and_cache", "shadowed", "everything_else", "duplicates", "waste"):  # fmt: skip
            result.add_value(f"{label}: {key.replace('_', ' ')}", row[key], "B")
        result.add_value(
            f"{label}: size / (base + Python packages)", row["size_over_base_and_packages"], "x"
        )
    ours, theirs = rows["bakery cpu"], rows["hand-written cpu"]
    for name, key in (("waste", "waste"), ("image size (stored bytes)", "stored"),
                      ("bytes beyond base + Python packages", "extra_over_base_and_packages")):  # fmt: skip
        c = result.compare(name, "B", "hand-written cpu", "bakery cpu")
        c.baseline.samples.append(Sample(theirs[key]))
        c.bakery.samples.append(Sample(ours[key]))
    result.notes.append(
        "Sizes are deterministic for a given image: one sample each, no repetitions."
    )
    return result
