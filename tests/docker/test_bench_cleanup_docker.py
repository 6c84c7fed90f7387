"""The benchmark removes BuildKit cache records by exact id, and only those (real daemon)."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from bakery import base
from bench import tools

pytestmark = pytest.mark.docker


def test_prune_cache_records_removes_exactly_the_records_named(
    tmp_path: Path, base_image: base.BaseResult
) -> None:
    marker = f"perf-bench-cache-{uuid.uuid4().hex}"
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base_image.tag}\nRUN echo {marker} > /marker\n", encoding="utf-8"
    )
    before = tools.build_cache_ids()
    subprocess.run(
        ["docker", "buildx", "build", "--quiet", "--output", "type=cacheonly", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    listing = tools.docker("buildx", "du", "--verbose")
    ours = {
        record
        for block in listing.split("\n\n")
        if marker in block
        for record in tools.parse_cache_ids(block)
    }
    assert len(ours) == 1, f"expected one record for {marker}"
    assert tools.prune_cache_records(ours) == set()
    after = tools.build_cache_ids()
    assert not ours & after
    assert marker not in tools.docker("buildx", "du", "--verbose")
    assert before <= after, "records that existed before must all still be there"
