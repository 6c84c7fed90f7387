"""What a matrix is once read: the project, its variants, a selection, and the targets behind them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import SpecifierSet

from bakery.compat import WheelIndex

FLAVOURS = ("full", "slim")


@dataclass(frozen=True)
class Project:
    repository: str
    user: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Variant:
    """One image: a target × torch × python × flavour combination, fully resolved."""

    target: str
    index: WheelIndex
    torch: str
    python: str
    flavour: str
    companions: tuple[tuple[str, str], ...]
    base: str
    base_digest: str
    base_python: str
    gpu_archs: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    stack: tuple[tuple[str, str], ...]
    project: Project
    apt_packages: tuple[str, ...] = ()  # matrix apt_packages: global, then the target's

    @property
    def tag(self) -> str:
        suffix = "-slim" if self.flavour == "slim" else ""
        return f"{self.torch}-{self.index.tag_part}-py{self.python}{suffix}"

    @property
    def id(self) -> str:
        return self.tag

    @property
    def image(self) -> str:
        return self.ref()

    def ref(self, repository: str | None = None) -> str:
        """The full image reference `<repository>:<tag>`; the matrix's repository when None/''."""
        return f"{repository or self.project.repository}:{self.tag}"

    @property
    def base_ref(self) -> str:
        return f"{self.base}@{self.base_digest}" if self.base_digest else self.base

    @property
    def accelerator(self) -> str:
        return self.index.accelerator

    @property
    def pypi_equivalent(self) -> bool:
        return self.torch in self.index.pypi_equivalent

    def companion(self, name: str) -> str | None:
        return dict(self.companions).get(name)


@dataclass(frozen=True)
class Matrix:
    path: Path
    project: Project
    variants: tuple[Variant, ...]


@dataclass(frozen=True)
class Selection:
    """What the selection flags ask for; empty tuples select everything."""

    targets: tuple[str, ...] = ()
    torch: tuple[str, ...] = ()
    python: tuple[str, ...] = ()
    flavours: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()  # globs on the variant id

    @classmethod
    def from_flags(
        cls,
        targets: Sequence[str] = (),
        torch: Sequence[str] = (),
        python: Sequence[str] = (),
        flavours: Sequence[str] = (),
        variants: Sequence[str] = (),
    ) -> Selection:
        """The selection flags as given: each value may hold comma-separated items."""
        return cls(
            _items(targets), _items(torch), _items(python), _items(flavours), _items(variants)
        )

    @property
    def empty(self) -> bool:
        """No flag given: every variant (or, for some commands, the host's default)."""
        return not any((self.targets, self.torch, self.python, self.flavours, self.variants))


def _items(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(item.strip() for value in values for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Target:
    """One `[targets.NAME]` table, checked; it expands into variants (bakery.matrix.expand)."""

    name: str
    index: WheelIndex
    base: str
    base_digest: str
    base_python: str
    torch: tuple[str, ...]
    python: tuple[str, ...]
    companions: tuple[str, ...]
    gpu_archs: tuple[str, ...]
    flavours: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    apt_packages: tuple[str, ...] = ()


# One `[[stack]]` entry: the Python versions it covers and its pinned packages.
StackSet = tuple[SpecifierSet, tuple[tuple[str, str], ...]]
