"""Offline by default, a usable HF_HOME whatever HOME is, and a user's own HF_HOME respected."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import stylelora_kit  # noqa: F401 - puts the repository root first on sys.path

from stylelora.env import prepare_environment

Make = Callable[[Path], dict[str, str]]


def home_with_cache(tmp: Path) -> dict[str, str]:
    (tmp / ".cache" / "huggingface").mkdir(parents=True)
    return {"HOME": str(tmp)}


def home_under_a_file(tmp: Path) -> dict[str, str]:
    (tmp / "file").write_text("")
    return {"HOME": str(tmp / "file" / "home")}


PRIVATE_TEMP = "private-temp"
CASES = [
    pytest.param(
        lambda t: {"HF_HOME": str(t / "mine"), "HOME": "/nonexistent"},
        "mine",
        id="user-hf-home-kept",
    ),
    pytest.param(home_with_cache, None, id="existing-cache-kept"),
    pytest.param(lambda t: {"HOME": str(t)}, None, id="writable-home-kept"),
    pytest.param(
        lambda t: {"HOME": "/nonexistent/stylelora"},
        PRIVATE_TEMP,
        id="nonexistent-home",
        marks=pytest.mark.skipif(
            os.geteuid() == 0, reason="root could create it (covered by the e2e test)"
        ),
    ),
    pytest.param(home_under_a_file, PRIVATE_TEMP, id="home-under-a-file"),
    pytest.param(lambda t: {"HOME": "~"}, PRIVATE_TEMP, id="home-unresolved"),
    pytest.param(
        lambda t: {"HOME": "/nonexistent", "XDG_CACHE_HOME": str(t)}, None, id="xdg-cache-used"
    ),
]


@pytest.mark.parametrize(("make", "expected"), CASES)
def test_hf_home(tmp_path: Path, make: Make, expected: str | None) -> None:
    env = make(tmp_path)
    before = env.get("HF_HOME")
    prepare_environment(online=False, environ=env)
    if expected == PRIVATE_TEMP:
        hf_home = Path(env["HF_HOME"])
        assert hf_home.parent == Path(tempfile.gettempdir())
        assert hf_home.name.startswith("stylelora-hf-")
        assert hf_home.stat().st_uid == os.getuid()
    elif expected is None:
        assert "HF_HOME" not in env
    else:
        assert env["HF_HOME"] == before


@pytest.mark.parametrize(
    ("online", "value"), [(False, "1"), (True, "0")], ids=["offline-default", "online-opt-in"]
)
def test_offline_unless_asked(tmp_path: Path, online: bool, value: str) -> None:
    env = {"HOME": str(tmp_path), "HF_HUB_OFFLINE": "0" if value == "1" else "1"}
    prepare_environment(online=online, environ=env)
    assert env["HF_HUB_OFFLINE"] == value
    assert env["TRANSFORMERS_OFFLINE"] == value


def test_user_verbosity_is_not_overridden(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "TRANSFORMERS_VERBOSITY": "info"}
    prepare_environment(online=False, environ=env)
    assert env["TRANSFORMERS_VERBOSITY"] == "info"
    assert env["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
