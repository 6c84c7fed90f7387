"""Style images: find them, check every one up front, and serve seeded batches.

All images are decoded once at start-up (as uint8, a quarter of the float size), so a bad file is
reported before any model is loaded and training never stops half-way on one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from stylelora.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StyleImages:
    """Decoded images, (N, 3, R, R) uint8, with their source paths."""

    pixels: torch.Tensor
    paths: tuple[Path, ...]

    def batches(self, batch_size: int, generator: torch.Generator) -> BatchCursor:
        """Endless shuffled batches in [-1, 1]; an epoch smaller than a batch repeats images."""
        return BatchCursor(self.pixels, batch_size, generator)


class BatchCursor(Iterator[torch.Tensor]):
    """The data order as state: the current epoch's permutation and the position in it.

    Permutations come from the run's generator, so the generator's state plus `state()` is all a
    checkpoint needs to continue the exact same sequence of batches.
    """

    def __init__(self, pixels: torch.Tensor, batch_size: int, generator: torch.Generator) -> None:
        self.pixels = pixels
        self.batch_size = batch_size
        self.generator = generator
        self.order = torch.zeros(0, dtype=torch.int64)
        self.position = 0

    def __next__(self) -> torch.Tensor:
        if self.position + self.batch_size > len(self.order):
            count = self.pixels.shape[0]
            order = torch.randperm(count, generator=self.generator)
            while len(order) < self.batch_size:
                order = torch.cat([order, torch.randperm(count, generator=self.generator)])
            self.order, self.position = order, 0
        picked = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return to_model_range(self.pixels[picked])

    def state(self) -> dict[str, torch.Tensor | int]:
        return {"order": self.order.clone(), "position": self.position}

    def load_state(self, state: dict[str, object]) -> None:
        order, position = state["order"], state["position"]
        if not isinstance(order, torch.Tensor) or not isinstance(position, int):
            raise TypeError("a data-order state needs an order tensor and an int position")
        self.order, self.position = order.to(torch.int64), position


def split_heldout(images: StyleImages, validating: bool) -> tuple[StyleImages, torch.Tensor | None]:
    """With validation on and two or more images, the last image is held out of training."""
    if not validating or len(images.paths) < 2:
        return images, None
    log.info("validation: %s is held out of training", images.paths[-1].name)
    kept = StyleImages(images.pixels[:-1], images.paths[:-1])
    return kept, to_model_range(images.pixels[-1:])


def to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] to float [-1, 1], the range the SD VAE expects."""
    return pixels.float() / 127.5 - 1.0


def find_images(folder: Path) -> list[Path]:
    """Every non-hidden file under `folder`, sorted; errors if there is none."""
    if not folder.exists():
        raise DataError(
            f"data folder {folder} does not exist", fix="pass --data DIR with style images"
        )
    if not folder.is_dir():
        raise DataError(
            f"data path {folder} is not a folder", fix="pass --data DIR with style images"
        )
    files = sorted(
        p
        for p in folder.rglob("*")
        if (p.is_file() or (p.is_symlink() and not p.exists()))  # a dangling link is reported
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    if not files:
        raise DataError(
            f"data folder {folder} holds no images", fix="put PNG or JPEG style images in it"
        )
    return files


def load_image(path: Path, resolution: int) -> tuple[np.ndarray, str, tuple[int, int]]:
    """One RGB image resized (shorter side) and centre-cropped to a square; plus its mode and size."""
    try:
        with Image.open(path) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        reason = "not an image" if isinstance(err, UnidentifiedImageError) else str(err)
        raise DataError(
            f"cannot read {path} as an image", why=reason, fix="remove the file or replace it"
        ) from err
    mode, size = image.mode, image.size
    if image.mode != "RGB":
        image = _to_rgb(image)
    if image.size != (resolution, resolution):
        image = ImageOps.fit(image, (resolution, resolution), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8), mode, size


def _to_rgb(image: Image.Image) -> Image.Image:
    """Transparent pixels become white rather than whatever colour they happen to store."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_style_images(folder: Path, resolution: int) -> StyleImages:
    """Decode every image in `folder`; say how many were resized or converted."""
    paths = find_images(folder)
    arrays, modes, sizes = [], Counter[str](), Counter[tuple[int, int]]()
    for path in paths:
        array, mode, size = load_image(path, resolution)
        arrays.append(array)
        modes[mode] += 1
        sizes[size] += 1
    _report(len(paths), resolution, modes, sizes)
    pixels = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return StyleImages(pixels=pixels, paths=tuple(paths))


def _report(
    count: int, resolution: int, modes: Counter[str], sizes: Counter[tuple[int, int]]
) -> None:
    log.info("found %d style images in the data folder", count)
    resized = count - sizes.get((resolution, resolution), 0)
    if resized:
        seen = ", ".join(f"{w}x{h}" for w, h in sorted(sizes))
        log.info(
            "note: resized %d of %d images to %dx%d (sizes seen: %s)",
            resized,
            count,
            resolution,
            resolution,
            seen,
        )
    converted = count - modes.get("RGB", 0)
    if converted:
        seen = ", ".join(sorted(m for m in modes if m != "RGB"))
        log.info("note: converted %d of %d images to RGB (modes seen: %s)", converted, count, seen)
