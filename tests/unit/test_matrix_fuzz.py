"""Arbitrary TOML-shaped data never escapes the loader as anything but ConfigError."""

from __future__ import annotations

import contextlib
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bakery.errors import ConfigError
from bakery.matrix import parse_matrix

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["project", "targets", "stack", "exclude", "include", "rocm", "cuda", "cpu", "index", "torch",
        "python", "base", "base_digest", "base_python", "companions", "gpu_archs", "flavours", "env",
        "repository", "user", "uid", "gid", "packages", "target", "flavour", "torchvision"]  # fmt: skip

scalars = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True), st.text(max_size=12),
    st.sampled_from(["2.9.1", "3.11", "rocm6.3", "cu128", "full", "slim", "sha256:" + "a" * 64]),
)  # fmt: skip
toml_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5
        ),
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), toml_values, max_size=6)
)
def test_random_documents_raise_only_config_error(data: dict[str, Any]) -> None:
    problems: tuple[object, ...] = ("no error",)
    try:
        parse_matrix(data, Path("fuzz.toml"))
    except ConfigError as exc:
        problems = exc.problems
    assert problems, "a ConfigError must carry at least one problem"


base = tomllib.loads((ROOT / "matrix.toml").read_text(encoding="utf-8"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["project", "targets", "stack"]),
    st.sampled_from(["repository", "uid", "rocm", "cpu", "python", "packages", "torch", "env"]),
    toml_values,
)
def test_mutating_one_key_of_the_real_matrix_raises_only_config_error(
    section: str, key: str, value: Any
) -> None:
    data: dict[str, Any] = {k: v for k, v in base.items()}
    node = data[section]
    if isinstance(node, dict):
        node = dict(node)
        if key in node and isinstance(node[key], dict) and isinstance(value, dict):
            node[key] = {**node[key], **value}
        else:
            node[key] = value
    else:
        node = [value]
    data[section] = node
    with contextlib.suppress(ConfigError):
        parse_matrix(data, Path("fuzz.toml"))
