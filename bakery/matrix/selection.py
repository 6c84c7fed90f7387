"""The variants a selection picks (`--target/--torch/--python/--flavour`, `--variant` globs)."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from bakery.compat import python_key
from bakery.errors import SelectionError
from bakery.matrix.load import load_matrix
from bakery.matrix.model import Matrix, Selection, Variant


def load_selection(matrix_path: Path, selection: Selection) -> tuple[Matrix, list[Variant]]:
    """Load the matrix file and pick the selection's variants (at least one, or SelectionError)."""
    matrix = load_matrix(matrix_path)
    return matrix, select_variants(matrix, selection)


def select_variants(matrix: Matrix, selection: Selection) -> list[Variant]:
    """The variants the selection flags pick; SelectionError names what exists if none."""
    chosen = [v for v in matrix.variants if _selected(v, selection)]
    if not chosen:
        raise SelectionError(
            f"no variant matches {_describe_selection(selection)}",
            f"{matrix.path} yields {len(matrix.variants)} variants: targets "
            f"{_values(matrix, 'target')}; torch {_values(matrix, 'torch')}; "
            f"python {_values(matrix, 'python')}; flavours {_values(matrix, 'flavour')}",
            "run `python build.py list` to see them all",
        )
    return chosen


def _selected(v: Variant, s: Selection) -> bool:
    return (
        (not s.targets or v.target in s.targets)
        and (not s.torch or v.torch in s.torch)
        and (not s.python or v.python in s.python)
        and (not s.flavours or v.flavour in s.flavours)
        and (not s.variants or any(fnmatch.fnmatchcase(v.id, g) for g in s.variants))
    )


def _values(matrix: Matrix, attr: str) -> str:
    values = {str(getattr(v, attr)) for v in matrix.variants}
    key = python_key if attr in ("python",) else None
    return ", ".join(sorted(values, key=key) if key else sorted(values))


def _describe_selection(s: Selection) -> str:
    parts = [
        f"--{name} {','.join(values)}"
        for name, values in (
            ("target", s.targets), ("torch", s.torch), ("python", s.python),
            ("flavour", s.flavours), ("variant", s.variants),
        )
        if values
    ]  # fmt: skip
    return " ".join(parts) or "the selection"
