"""6. Disk shared across variants: unique layer bytes vs the sum of the image sizes.

The variants are the ones CI builds (BAKERY_CHECK_VARIANTS in .ci/run), those built on this
machine. The sum of `docker image inspect` sizes is what the images would take stored apart (or
as separate `docker save` files); the unique layer bytes are what the daemon stores: every layer
counted once by ChainID (the same diff on the same parents), with its size from the daemon's
layerdb. The ratio (sum / unique) says how much layer sharing saves; params.shared_layers in the
JSON lists the shared layers and the variants that use them.

Issue 17, goal 4, pair by pair: the bytes two variants share (layers with the same ChainID) as
a share of the smaller one. A full variant and its slim twin share base and Python (the slim
has no torch of its own, so all of it but its last small layers should be shared: goal >= 95 %);
a cpu and a cuda variant share base and Python but not torch, so the torch stack, most of both
images, is theirs alone (reported, no goal). The images are those in the daemon: built in one
run with one BuildKit cache (as .ci/run builds them), identical steps give identical layers;
built at different times after the cache was pruned, even the apt step differs.
"""

from __future__ import annotations

import re

from bench import tools
from bench.harness import STATUS_SKIPPED, BenchResult, Sample
from bench.tools import Context

NAME = "sharing"
TITLE = "Disk shared across the CI variants"
CI_VARIANTS = re.compile(r'BAKERY_CHECK_VARIANTS="([^"]*)"')


def ci_variants(ctx: Context) -> list[str]:
    match = CI_VARIANTS.search((ctx.root / ".ci" / "run").read_text(encoding="utf-8"))
    if match is None:
        raise tools.BenchError(".ci/run does not set BAKERY_CHECK_VARIANTS")
    return [v.strip() for v in match.group(1).split(",") if v.strip()]


def run(ctx: Context) -> BenchResult:
    from bakery.bundle import chain_ids  # noqa: PLC0415
    from bakery.matrix import load_matrix  # noqa: PLC0415

    result = BenchResult(NAME, TITLE, method=__doc__ or "")
    repository = load_matrix(ctx.root / "matrix.toml").project.repository
    wanted = ci_variants(ctx)
    sizes: dict[str, int] = {}
    unique: dict[str, int] = {}
    users: dict[str, list[str]] = {}
    for variant in wanted:
        facts = tools.image_facts(f"{repository}:{variant}")
        if facts is None:
            result.notes.append(f"{repository}:{variant} is not built here: left out")
            continue
        layer_sizes = tools.layer_sizes(facts.layers)
        if layer_sizes is None:
            result.status = STATUS_SKIPPED
            result.reason = (
                "the daemon's layerdb is not readable here (run as root on the classic store)"
            )
            return result
        sizes[variant] = facts.size
        for chain, size in zip(chain_ids(facts.layers), layer_sizes, strict=True):
            unique[chain] = size
            users.setdefault(chain, []).append(variant)
    if len(sizes) < 2:
        result.status = STATUS_SKIPPED
        result.reason = f"fewer than two of the CI variants {wanted} are built here"
        return result
    shared = {c: (unique[c], v) for c, v in users.items() if len(v) > 1}
    result.params = {
        "ci_variants": wanted,
        "measured": sorted(sizes),
        "image_sizes": sizes,
        "shared_layers": [
            {"chain_id": c, "bytes": size, "variants": v} for c, (size, v) in shared.items()
        ],
    }
    c = result.compare(
        "disk for the CI variants", "B", "sum of image sizes", "unique layer bytes",
        "baseline: the images stored apart; bakery: what the daemon stores (layers once)",
    )  # fmt: skip
    c.baseline.samples.append(Sample(sum(sizes.values())))
    c.bakery.samples.append(Sample(sum(unique.values())))
    result.add_value("layers in all images", sum(len(v) for v in users.values()), "layers")
    result.add_value("distinct layers", len(unique), "layers")
    result.add_value("bytes in layers used by 2+ variants", sum(s for s, _ in shared.values()), "B")
    _pairs(result, {v: unique_of(v, users, unique) for v in sizes})
    base = tools.image_facts(tools.BASE_IMAGE)
    if base is not None and set(shared) <= set(chain_ids(base.layers)):
        result.notes.append(
            f"Only the base image's layers ({tools.BASE_IMAGE}) are shared. Every variant's "
            "Dockerfile sets its own ENV (BAKERY_VARIANT, …) before the first RUN, so even the "
            "identical apt and venv steps of a full image and its slim twin make different layers."
        )
    return result


def unique_of(variant: str, users: dict[str, list[str]], unique: dict[str, int]) -> dict[str, int]:
    """The variant's layers (ChainID -> bytes)."""
    return {chain: unique[chain] for chain, names in users.items() if variant in names}


def slim_twin(a: str, b: str) -> bool:
    return a + "-slim" == b or b + "-slim" == a


def _pairs(result: BenchResult, layers: dict[str, dict[str, int]]) -> None:
    """Per pair of variants: bytes shared, as a share of the smaller (goal 4 for slim twins)."""
    names = sorted(layers)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sum(size for chain, size in layers[a].items() if chain in layers[b])
            smaller = min(sum(layers[a].values()), sum(layers[b].values()))
            goal = "goal 4: >= 95 %" if slim_twin(a, b) else "different torch stacks: no goal"
            result.add_value(
                f"shared by {a} and {b}", 100.0 * shared / smaller if smaller else 0.0, "%",
                f"{shared} B of the smaller image's {smaller} B; {goal}",
            )  # fmt: skip
