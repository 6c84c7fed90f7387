"""Commands that do not talk to Docker import no Docker client library (issue 17, goal 1).

Each command runs in a fresh interpreter, so modules imported by other tests cannot hide an
import; the check is on `sys.modules` after `main(...)` returns.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bakery import engine
from bakery.devbox import fast
from bakery.engine import client, images

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("python_on_whales", "pydantic")

PROBE = """\
import contextlib, io, json, sys
from bakery.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exc:  # --help
        code = exc.code
print(json.dumps({"code": code, "loaded": [m for m in %r if m in sys.modules]}))
"""


def probe(code: str, argv: list[str]) -> Any:
    """Run `code` with ARGV in a fresh interpreter; the JSON on its last line of output."""
    done = subprocess.run(
        [sys.executable, "-c", code, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--help"], id="help"),
        pytest.param(["list"], id="list"),
        pytest.param(["list", "--json"], id="list-json"),
        pytest.param(["generate", "--check"], id="generate-check"),
        pytest.param(["enter", "--help"], id="enter-help"),
        pytest.param(
            ["--variant", "2.13.0-cpu-py3.11", "--torch-source", "local", "--dry-run"],
            id="build-dry-run",
        ),
    ],
)
def test_command_imports_no_docker_client_library(argv: list[str]) -> None:
    result = probe(PROBE % (HEAVY,), argv)
    assert result["code"] == 0
    assert result["loaded"] == [], f"`build.py {' '.join(argv)}` imported {result['loaded']}"


@pytest.mark.parametrize("host", [None, "unix:///run/other.sock"], ids=["default", "host"])
def test_docker_command_matches_python_on_whales(host: str | None) -> None:
    from python_on_whales import DockerClient  # noqa: PLC0415 - the reference, only here

    expected = [str(part) for part in DockerClient(host=host).client_config.docker_cmd]
    with engine.connected(host):
        assert client._docker_command() == expected


def test_image_info_reads_docker_inspect_json() -> None:
    raw = {
        "Id": "sha256:abc",
        "RepoTags": ["x:1"],
        "Size": 12,
        "Config": {"Labels": None, "Env": ["A=1", "B=x=y"], "Cmd": None, "WorkingDir": ""},
        "RootFS": {"Layers": ["sha256:l1", "sha256:l2"]},
    }
    info = images._image_info(raw)
    assert (info.id, info.repo_tags, info.size) == ("sha256:abc", ("x:1",), 12)
    assert dict(info.env) == {"A": "1", "B": "x=y"}
    assert (info.cmd, info.entrypoint, info.workdir, info.user) == (None, None, "", "")
    assert dict(info.labels) == {}
    assert info.layers == ("sha256:l1", "sha256:l2")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param([], (None, ".", []), id="nothing"),
        pytest.param(["--name", "box"], ("box", ".", []), id="name"),
        pytest.param(["--name=box", "--", "true"], ("box", ".", ["true"]), id="name-equals"),
        pytest.param(["--workspace", "/tmp", "--", "a", "--name"], (None, "/tmp", ["a", "--name"]), id="command-keeps-options"),
        pytest.param(["--create", "--name", "box"], None, id="create-is-slow-path"),
        pytest.param(["--name", "a", "--name", "b"], None, id="repeated"),
        pytest.param(["--name"], None, id="missing-value"),
        pytest.param(["--name", "--debug"], None, id="option-as-value"),
        pytest.param(["bash"], None, id="command-without-dashes"),
        pytest.param(["--debug", "--", "true"], None, id="other-option"),
    ],
)  # fmt: skip
def test_fast_enter_takes_only_name_workspace_and_command(
    argv: list[str], expected: tuple[str | None, str, list[str]] | None
) -> None:
    parsed = fast._fast_enter_args(argv)
    if expected is None:
        assert parsed is None
        return
    assert parsed is not None
    name, workspace, command = expected
    assert parsed == (name, str(Path(workspace).resolve()), command)


# What `--help` must not import: it only builds the parser (bakery/cli/*.py import argparse, the
# standard library and constant-only bakery modules at module level; handlers import the rest).
HELP_FREE = (
    "jinja2",
    "packaging",
    "rich",
    "yaml",
    "bakery.matrix.checker",
    "bakery.render",
    "bakery.build",
    "bakery.bundle",
    "bakery.publish",
    "bakery.slim",
    "bakery.testrun",
)
HELP_PROBE = """\
import contextlib, io, json, sys
from bakery.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
names = %r
names_dot = tuple(n + "." for n in names)
print(json.dumps(sorted(m for m in sys.modules if m in names or m.startswith(names_dot))))
"""


def imports_of(argv: list[str], names: tuple[str, ...] = HELP_FREE) -> list[str]:
    """The modules of `names` (and their submodules) that `build.py ARGV` left imported."""
    loaded: list[str] = probe(HELP_PROBE % (names,), argv)
    return loaded


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["--help"], id="help"),
        pytest.param(["build", "--help"], id="build-help"),
        pytest.param(["release", "--help"], id="release-help"),
    ],
)
def test_help_imports_no_library(argv: list[str]) -> None:
    loaded = imports_of(argv)
    assert loaded == [], f"`build.py {' '.join(argv)}` imported {loaded}"


@pytest.mark.parametrize("argv", [["list", "--json"], ["list"]], ids=["json", "table"])
def test_list_imports_no_rich(argv: list[str]) -> None:
    """`list` prints JSON or a plain aligned table: rich's import alone outweighed the rest."""
    assert imports_of(argv, ("rich",)) == []


# Module-level imports bakery/cli/*.py may have: besides the standard library and bakery.cli,
# bakery itself (__version__), the error types (standard library only) and constant-only modules.
CLI_MAY_IMPORT = ("bakery", "bakery.errors", "bakery.defaults")


def module_level_imports(path: Path) -> list[str]:
    """Modules a file imports outside functions and `if TYPE_CHECKING:` blocks."""
    tree = ast.parse(path.read_text())
    found: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


@pytest.mark.parametrize(
    "path", sorted((ROOT / "bakery" / "cli").glob("*.py")), ids=lambda p: p.name
)
def test_cli_modules_import_no_library_at_module_level(path: Path) -> None:
    libraries = [
        name
        for name in module_level_imports(path)
        if name.split(".")[0] not in sys.stdlib_module_names
        and name not in CLI_MAY_IMPORT
        and not name.startswith("bakery.cli")
    ]
    assert libraries == [], f"{path.name} imports {libraries} at module level: import them lazily"
