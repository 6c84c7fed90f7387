"""The slim cpu image is a small fraction of the full one (it carries no torch stack)."""

from __future__ import annotations

import pytest
from support.ci import require_image

from bakery import engine
from bakery.matrix import Variant

pytestmark = pytest.mark.docker


def test_slim_image_is_under_a_tenth_of_the_full_one(
    slim_image: str, slim_variant: Variant
) -> None:
    full_ref = slim_variant.image.removesuffix("-slim")
    require_image(full_ref, f"python build.py --variant {slim_variant.id[:-5]}")
    full = engine.inspect_image(full_ref)
    assert full is not None
    slim = engine.inspect_image(slim_image)
    assert slim is not None
    ratio = slim.size / full.size
    print(f"slim {slim.size} bytes, full {full.size} bytes, ratio {ratio:.3f}")
    assert ratio < 0.10, f"slim {slim.size} B is {ratio:.1%} of full {full.size} B"
