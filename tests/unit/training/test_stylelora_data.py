"""Style-image folders: every bad input is one clear error; odd sizes and modes are converted."""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import stylelora_kit  # noqa: F401 - puts the repository root first on sys.path
import torch
from PIL import Image

from stylelora.data import load_style_images
from stylelora.errors import DataError
from stylelora.tiny import style_image


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    style_image(0).save(buffer, format="PNG")
    return buffer.getvalue()


def make_missing(folder: Path) -> Path:
    return folder / "nope"


def make_file(folder: Path) -> Path:
    path = folder / "image.png"
    path.write_bytes(png_bytes())
    return path


def make_empty(folder: Path) -> Path:
    return folder


def make_dangling_link(folder: Path) -> Path:
    style_image(1).save(folder / "good.png")
    (folder / "gone.png").symlink_to(folder / "deleted.png")
    return folder


def make_hidden_only(folder: Path) -> Path:
    (folder / ".DS_Store").write_bytes(b"\0\0")
    return folder


def with_file(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        style_image(1).save(folder / "good.png")
        (folder / name).write_bytes(data)
        return folder

    return make


BAD_FOLDERS = [
    pytest.param(make_missing, r"data folder .*nope does not exist", id="missing-folder"),
    pytest.param(make_file, r"data path .*image.png is not a folder", id="path-is-a-file"),
    pytest.param(make_empty, r"data folder .* holds no images", id="empty-folder"),
    pytest.param(
        make_dangling_link,
        r"cannot read .*gone.png as an image — .*No such file",
        id="dangling-link",
    ),
    pytest.param(make_hidden_only, r"data folder .* holds no images", id="only-hidden-files"),
    pytest.param(
        with_file("notes.txt", b"hello"),
        r"cannot read .*notes.txt as an image — not an image",
        id="text-file",
    ),
    pytest.param(
        with_file("bad.png", b"\x89PNG\r\n\x1a\nrubbish"),
        r"cannot read .*bad.png as an image",
        id="corrupt-png",
    ),
    pytest.param(
        with_file("cut.png", png_bytes()[:200]),
        r"cannot read .*cut.png as an image",
        id="truncated-png",
    ),
    pytest.param(
        with_file("empty.jpg", b""), r"cannot read .*empty.jpg as an image", id="zero-byte-jpeg"
    ),
]


@pytest.mark.parametrize(("make", "message"), BAD_FOLDERS)
def test_bad_data_folder_is_one_clear_error(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    with pytest.raises(DataError) as caught:
        load_style_images(make(tmp_path), 32)
    line = caught.value.render()
    assert re.search(message, line), line
    assert "\n" not in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_one_clear_error(tmp_path: Path) -> None:
    path = make_file(tmp_path)
    path.chmod(0)
    with pytest.raises(DataError) as caught:
        load_style_images(tmp_path, 32)
    assert re.search(
        "cannot read .*image.png as an image — .*Permission denied", caught.value.render()
    )


def test_mixed_sizes_and_modes_are_converted_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    base = style_image(2, (48, 40))
    base.convert("RGBA").save(tmp_path / "a.png")
    base.convert("L").save(tmp_path / "b.png")
    base.convert("P").save(tmp_path / "c.gif")
    base.save(tmp_path / "d.jpg", quality=90)
    style_image(3).save(tmp_path / "e.webp")
    with caplog.at_level(logging.INFO, logger="stylelora"):
        images = load_style_images(tmp_path, 32)
    assert images.pixels.shape == (5, 3, 32, 32)
    assert images.pixels.dtype == torch.uint8
    text = caplog.text
    assert "resized 4 of 5 images to 32x32 (sizes seen: 32x32, 48x40)" in text
    assert "converted 3 of 5 images to RGB (modes seen: L, P, RGBA)" in text


def test_transparent_pixels_become_white(tmp_path: Path) -> None:
    Image.new("RGBA", (32, 32), (10, 200, 30, 0)).save(tmp_path / "clear.png")
    pixels = load_style_images(tmp_path, 32).pixels
    assert bool((pixels == 255).all())


def test_batches_are_seeded_and_cover_every_image(tmp_path: Path) -> None:
    for index in range(5):
        style_image(index).save(tmp_path / f"{index}.png")
    images = load_style_images(tmp_path, 32)

    def draw(seed: int, count: int) -> list[torch.Tensor]:
        batches = images.batches(2, torch.Generator().manual_seed(seed))
        return [next(batches) for _ in range(count)]

    first, again = draw(0, 4), draw(0, 4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, draw(1, 4), strict=True))
    seen = {tuple(np.round(img.numpy().ravel()[:16], 4)) for batch in first[:2] for img in batch}
    assert len(seen) == 4  # one epoch of 5 gives two full batches of distinct images
    assert float(first[0].min()) >= -1.0
    assert float(first[0].max()) <= 1.0


def test_a_batch_larger_than_the_folder_repeats_images(tmp_path: Path) -> None:
    style_image(0).save(tmp_path / "only.png")
    batch = next(load_style_images(tmp_path, 32).batches(3, torch.Generator().manual_seed(0)))
    assert batch.shape == (3, 3, 32, 32)
