"""Version pairing: which torch / companion / Python / wheel-index combinations exist.

The facts live in `bakery/data/pairing.toml` (committed data, regenerated from the indexes);
this module only loads them and answers questions about a combination.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from packaging.version import InvalidVersion, Version

COMPANIONS = ("torchvision", "torchaudio")
ACCELERATORS = ("rocm", "cuda", "cpu")


@dataclass(frozen=True)
class TorchRelease:
    version: str
    companions: tuple[tuple[str, str], ...]
    python: tuple[str, ...]

    def companion(self, name: str) -> str:
        return dict(self.companions)[name]


@dataclass(frozen=True)
class WheelIndex:
    name: str  # rocm6.3, cu128, cpu
    accelerator: str  # rocm, cuda, cpu
    version: str  # 6.3, 12.8, ""
    url: str
    local: str  # the local version label of its wheels: +rocm6.3, +cu128, +cpu
    torch: tuple[str, ...]
    pypi_equivalent: tuple[str, ...]

    @property
    def tag_part(self) -> str:
        """How the accelerator appears in image tags: rocm6.3, cuda12.8, cpu."""
        return f"{self.accelerator}{self.version}"


@dataclass(frozen=True)
class Pairing:
    releases: dict[str, TorchRelease]
    indexes: dict[str, WheelIndex]


@cache
def load_pairing() -> Pairing:
    text = resources.files("bakery").joinpath("data/pairing.toml").read_text(encoding="utf-8")
    data = tomllib.loads(text)
    releases = {
        version: TorchRelease(
            version=version,
            companions=tuple((name, str(entry[name])) for name in COMPANIONS if name in entry),
            python=tuple(entry["python"]),
        )
        for version, entry in data["torch"].items()
    }
    indexes = {
        name: WheelIndex(
            name=name,
            accelerator=entry["accelerator"],
            version=entry["version"],
            url=entry["url"],
            local=entry["local"],
            torch=tuple(entry["torch"]),
            pypi_equivalent=tuple(entry.get("pypi_equivalent", ())),
        )
        for name, entry in data["index"].items()
    }
    return Pairing(releases=releases, indexes=indexes)


def expected_torchvision(torch: str) -> str:
    """The torchvision release that pairs with torch 2.M.P: 0.(M+15).P."""
    v = Version(torch)
    return f"0.{v.minor + 15}.{v.micro}"


def is_version(text: str) -> bool:
    try:
        Version(text)
    except InvalidVersion:
        return False
    return True


def python_key(text: str) -> tuple[int, ...]:
    """Sort key for 'X.Y' strings (3.9 before 3.10)."""
    return tuple(int(part) for part in text.split("."))


def describe_python(versions: tuple[str, ...]) -> str:
    ordered = sorted(versions, key=python_key)
    return f"{ordered[0]}–{ordered[-1]}" if ordered else "none"
