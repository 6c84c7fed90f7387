"""`enter`'s fast path (bakery.devbox.fast, bakery.engine.api) without Docker: what it imports,
how it reads the daemon's answers, and that its rules agree with the full path's.

The daemon here is a stand-in: a real unix socket served by a thread with canned HTTP answers
(`fake_daemon`), since these tests run where no Docker engine is. The same code against the
real daemon is tests/devbox/test_enter_fast_docker.py.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from bakery import devbox, engine, host, matrix
from bakery.devbox import fast
from bakery.engine import api

ROOT = Path(__file__).resolve().parents[2]
FAST_MODULES = {
    "bakery",
    "bakery.lazy",
    "bakery.devbox",
    "bakery.devbox.fast",
    "bakery.engine",
    "bakery.engine.api",
}


def modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(done.stdout.split())


def test_the_fast_path_imports_only_itself_and_the_standard_library() -> None:
    bare = modules_after("pass")
    loaded = modules_after("import bakery.devbox.fast") - bare
    assert {m for m in loaded if m.startswith("bakery")} == FAST_MODULES
    outside = {m.split(".")[0] for m in loaded} - {"bakery"}
    assert all(name in sys.stdlib_module_names or name.startswith("_") for name in outside), outside


@pytest.mark.parametrize("package", ["bakery.engine", "bakery.devbox", "bakery.matrix"])
def test_a_lazy_package_imports_none_of_its_modules(package: str) -> None:
    loaded = modules_after(f"import {package}")
    assert {m for m in loaded if m.startswith(f"{package}.")} == set()


@pytest.mark.parametrize("package", [engine, devbox, matrix], ids=["engine", "devbox", "matrix"])
def test_a_lazy_package_maps_every_name_where_its_type_imports_say(package: ModuleType) -> None:
    """The `if TYPE_CHECKING:` imports (what mypy sees), _HOME and __all__ list the same names."""
    source = Path(str(package.__file__)).read_text()
    guarded = next(
        n
        for n in ast.parse(source).body
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test)
    )
    typed = {
        alias.name: node.module
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == vars(package)["_HOME"]
    assert sorted(typed) == sorted(vars(package)["__all__"])
    for name in typed:  # every name really resolves
        assert getattr(package, name) is not None


def test_a_name_a_lazy_package_does_not_have_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = engine.no_such_name  # type: ignore[attr-defined]


# The rules both paths share ------------------------------------------------------------------


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"SUDO_UID": "0", "SUDO_GID": "0"},
        {"SUDO_UID": "65533", "SUDO_GID": "65533"},  # no account: "u65533"
        {"SUDO_UID": "x", "SUDO_GID": "0"},
    ],
    ids=["plain", "sudo-root", "sudo-unknown-uid", "sudo-garbage"],
)
def test_the_fast_login_name_is_the_full_paths(env: dict[str, str]) -> None:
    assert fast.login_name(env) == host.invoking_user(env).name


@pytest.mark.parametrize(
    ("cwd", "expected"),
    [
        ("/srv/proj", "/workspace"),
        ("/srv/proj/src/a", "/workspace/src/a"),
        ("/srv/project", "/workspace"),  # a sibling that shares the prefix is outside
        ("/srv", "/workspace"),
        ("/srv/proj/..x", "/workspace/..x"),
    ],
)
def test_workdir_is_the_callers_folder_inside_the_workspace(cwd: str, expected: str) -> None:
    assert fast.workdir_for("/srv/proj", cwd) == expected


def test_without_a_workspace_label_the_workdir_is_the_workspace_root() -> None:
    assert fast.workdir_for("", "/anything") == fast.WORKSPACE_IN


def test_only_settings_with_credentials_are_handed_by_name() -> None:
    env = {"HTTPS_PROXY": "http://u:pw@proxy:3128", "HF_ENDPOINT": "https://hf.example", "X": "y"}
    assert fast.credential_names(env) == ("HTTPS_PROXY",)


def test_the_stale_note_names_both_images_and_the_fix() -> None:
    assert fast.stale_message("box", "repo:tag", "sha256:" + "a" * 64, "sha256:" + "a" * 64) == ""
    assert fast.stale_message("box", "repo:tag", "sha256:" + "a" * 64, "") == ""
    note = fast.stale_message("box", "repo:tag", "sha256:" + "a" * 64, "sha256:" + "b" * 64)
    assert "aaaaaaaaaaaa vs bbbbbbbbbbbb" in note
    assert "up --recreate --name box" in note


def test_the_exec_argv_is_the_docker_binary_then_the_shared_arguments() -> None:
    argv = engine.exec_argv("box", ["true"], tty=False, workdir="/workspace", env_from_caller=["A"])
    assert argv[1:] == api.exec_args(
        "box", ["true"], tty=False, workdir="/workspace", env_from_caller=["A"]
    )
    assert argv[1:] == [
        "exec",
        "--interactive",
        "--workdir",
        "/workspace",
        "--env",
        "A",
        "box",
        "true",
    ]


# The daemon's socket ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, api.DEFAULT_SOCKET),
        ({"DOCKER_HOST": "unix:///run/user/1000/docker.sock"}, "/run/user/1000/docker.sock"),
        ({"DOCKER_HOST": "tcp://10.0.0.1:2376"}, None),
        ({"DOCKER_HOST": "ssh://me@server"}, None),
        ({"DOCKER_HOST": "unix://"}, None),
        ({"DOCKER_CONTEXT": "remote"}, None),
    ],
)
def test_only_a_plain_local_daemon_is_asked_directly(
    env: dict[str, str], expected: str | None, tmp_path: Path
) -> None:
    env = {**env, "DOCKER_CONFIG": str(tmp_path)}
    assert api.local_socket(env) == expected


def test_a_current_context_in_the_cli_config_takes_the_full_path(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    assert api.local_socket({"DOCKER_CONFIG": str(tmp_path)}) is None
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "default"}))
    assert api.local_socket({"DOCKER_CONFIG": str(tmp_path)}) == api.DEFAULT_SOCKET


@pytest.fixture
def fake_daemon(tmp_path: Path) -> Iterator[tuple[dict[str, bytes], dict[str, str], list[str]]]:
    """Stand-in daemon: a real unix socket; answers[path] is the raw HTTP answer it sends."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    answers: dict[str, bytes] = {}
    asked: list[str] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                request = conn.recv(65536).decode()
                target = request.split(" ")[1]
                asked.append(target)
                conn.sendall(answers.get(target, b"HTTP/1.0 404 Not Found\r\n\r\n{}"))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    env = {"DOCKER_HOST": f"unix://{path}", "DOCKER_CONFIG": str(tmp_path)}
    yield answers, env, asked
    server.close()


def ok(document: object) -> bytes:
    return (
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + json.dumps(document).encode()
    )


def test_get_json_reads_a_200_answer(
    fake_daemon: tuple[dict[str, bytes], dict[str, str], list[str]],
) -> None:
    answers, env, asked = fake_daemon
    answers[f"/{api.API_VERSION}/containers/box/json"] = ok({"Name": "/box"})
    assert api.container("box", env) == {"Name": "/box"}
    assert asked == [f"/{api.API_VERSION}/containers/box/json"]


@pytest.mark.parametrize(
    "answer",
    [
        b'HTTP/1.0 404 Not Found\r\n\r\n{"message": "No such container"}',
        b"HTTP/1.0 500 Internal Server Error\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nnot json",
        b"garbage",
    ],
    ids=["missing", "error", "chunked", "not-json", "garbage"],
)
def test_anything_but_a_plain_200_is_none(
    answer: bytes, fake_daemon: tuple[dict[str, bytes], dict[str, str], list[str]]
) -> None:
    answers, env, _ = fake_daemon
    answers[f"/{api.API_VERSION}/containers/box/json"] = answer
    assert api.container("box", env) is None


def test_no_daemon_is_none(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path / 'nothing.sock'}", "DOCKER_CONFIG": str(tmp_path)}
    assert api.container("box", env) is None


@pytest.mark.parametrize("name", ["../images/x", "a b", "", "/abs", "box?all=1"])
def test_names_that_are_not_names_are_never_sent(
    name: str, fake_daemon: tuple[dict[str, bytes], dict[str, str], list[str]]
) -> None:
    _, env, asked = fake_daemon
    assert api.container(name, env) is None
    assert asked == []


@pytest.mark.parametrize(
    ("running", "labels", "execs_docker"),
    [(False, {fast.LABEL: "1"}, False), (True, {}, False), (True, {fast.LABEL: "1"}, True)],
    ids=["stopped", "not-a-dev-container", "running-dev-container"],
)
def test_only_a_running_dev_container_is_entered_fast(
    running: bool,
    labels: dict[str, str],
    execs_docker: bool,
    fake_daemon: tuple[dict[str, bytes], dict[str, str], list[str]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    answers, env, _ = fake_daemon
    docker = tmp_path / "bin" / "docker"  # never run: os.execvp is replaced below
    docker.parent.mkdir()
    docker.write_text("#!/bin/sh\nexit 99\n")
    docker.chmod(0o755)
    document = {"Name": "/box", "Image": "sha256:a", "State": {"Running": running},
                "Config": {"Image": "r:t", "Labels": labels}}  # fmt: skip
    answers[f"/{api.API_VERSION}/containers/box/json"] = ok(document)
    execs: list[list[str]] = []
    monkeypatch.setattr(os, "execvp", lambda file, argv: execs.append(argv))
    fast.enter_fast(["--name", "box", "--", "true"], {**env, "PATH": str(docker.parent)})
    expected = [str(docker), "exec", "--interactive", "--workdir", "/workspace", "box", "true"]
    assert execs == ([expected] if execs_docker else [])
