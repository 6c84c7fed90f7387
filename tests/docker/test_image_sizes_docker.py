"""`list` reads every variant's size with one `docker image inspect` (real daemon)."""

from __future__ import annotations

import uuid

import pytest

from bakery import base, engine

pytestmark = pytest.mark.docker


def test_image_sizes_match_inspect_image_and_name_missing_images(
    base_image: base.BaseResult,
) -> None:
    missing = f"perf-missing-{uuid.uuid4().hex[:8]}:none"
    sizes = engine.image_sizes([base_image.tag, missing])
    info = engine.inspect_image(base_image.tag)
    assert info is not None
    assert sizes == {base_image.tag: info.size, missing: None}


def test_image_sizes_of_nothing_runs_nothing() -> None:
    assert engine.image_sizes([]) == {}
