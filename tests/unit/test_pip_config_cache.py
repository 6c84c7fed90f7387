"""`pip config list` runs once per configuration, not once per build (issue 17, goal 2)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bakery import pipsources


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nfind-links = /opt/wheels-a\n", encoding="utf-8")
    return {
        "HOME": str(tmp_path / "home"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_CONFIG_DIRS": str(tmp_path / "xdg"),
        "PIP_CONFIG_FILE": str(conf),
    }


@pytest.fixture
def pip_runs(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> list[list[str]]:
    """Run the real `pip config list` under `env`, counting the runs."""
    runs: list[list[str]] = []
    real_run = subprocess.run

    def counting(command: list[str], **kwargs: Any) -> Any:
        runs.append(command)
        return real_run(command, **{**kwargs, "env": env})

    monkeypatch.setattr(subprocess, "run", counting)
    return runs


def test_second_call_reuses_the_result(env: dict[str, str], pip_runs: list[list[str]]) -> None:
    first = pipsources._pip_config_list(env)
    assert pipsources._config_value(first, "find-links") == "/opt/wheels-a"
    assert pipsources._pip_config_list(env) == first
    assert len(pip_runs) == 1


def test_an_edited_config_file_runs_pip_again(
    env: dict[str, str], pip_runs: list[list[str]]
) -> None:
    pipsources._pip_config_list(env)
    Path(env["PIP_CONFIG_FILE"]).write_text(
        "[global]\nfind-links = /opt/wheels-bb\n", encoding="utf-8"
    )
    again = pipsources._pip_config_list(env)
    assert pipsources._config_value(again, "find-links") == "/opt/wheels-bb"
    assert len(pip_runs) == 2


def test_a_new_user_config_file_or_pip_variable_changes_the_key(
    env: dict[str, str], tmp_path: Path
) -> None:
    key = pipsources.pip_config_key(env)
    assert pipsources.pip_config_key({**env, "PIP_INDEX_URL": "http://mirror/simple"}) != key
    user_conf = tmp_path / "home" / ".config" / "pip" / "pip.conf"
    user_conf.parent.mkdir(parents=True)
    user_conf.write_text("[global]\n", encoding="utf-8")
    assert pipsources.pip_config_key(env) != key


def test_a_failed_pip_is_not_remembered(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "boom")

    monkeypatch.setattr(subprocess, "run", failing)
    assert pipsources._pip_config_list(env) == {}
    assert not list((Path(env["XDG_CACHE_HOME"])).rglob("*.json"))
