"""Every test module that uses Docker says so: `pytestmark` carries `pytest.mark.docker`.

A module uses Docker when it imports python_on_whales or a Docker helper of tests/support, calls
the docker CLI (`docker(...)`, `run_container(...)`, `subprocess.run(["docker", ...])`), asks for
the daemon or an image (`require_daemon`, `require_image`), or uses a fixture that does: one of
support.fixtures' or of its folder's conftest.py (an autouse one counts for every module there).
tests/unit needs no Docker at all: there fakes stand in (a python_on_whales import that only
builds command lines is fine), and its modules may not use the Docker helpers of tests/support.
The walk reads the sources (ast), it imports nothing.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
DOCKER_MODULES = (
    "python_on_whales",
    "support.dockercli",
    "support.offline_daemon",
    "support.registry",
    "support.bundles",
    "support.devbox",
    "support.images",
    "support.engine_tests",
)
DOCKER_CALLS = {"docker", "run_container", "require_daemon", "require_image"}
SHARED_DOCKER_FIXTURES = {"forget_images", "new_name"}  # support.fixtures: images, containers


def _called_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def uses_docker_directly(tree: ast.AST) -> bool:
    """Docker imports, docker CLI calls or daemon/image requirements anywhere in `tree`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(DOCKER_MODULES):
            return True
        if isinstance(node, ast.Import) and any(
            a.name.startswith(DOCKER_MODULES) for a in node.names
        ):
            return True
        if isinstance(node, ast.Call) and _called_name(node) in DOCKER_CALLS:
            return True
        if isinstance(node, ast.Call) and node.args and _is_docker_command(node.args[0]):
            return True
    return False


def _is_docker_command(node: ast.expr) -> bool:
    """A `["docker", ...]` literal (a command line handed to subprocess and the like)."""
    if not isinstance(node, ast.List | ast.Tuple) or not node.elts:
        return False
    first = node.elts[0]
    return isinstance(first, ast.Constant) and first.value == "docker"


def _fixtures(tree: ast.Module) -> dict[str, tuple[ast.FunctionDef, bool]]:
    """Fixture functions of a module: name -> (definition, autouse)."""
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            text = ast.unparse(decorator)
            if text.startswith("pytest.fixture"):
                found[node.name] = (node, "autouse=True" in text)
    return found


def _requested(function: ast.FunctionDef) -> set[str]:
    return {a.arg for a in function.args.args}


def docker_fixtures(conftest: ast.Module, known: Iterable[str]) -> tuple[set[str], bool]:
    """(fixtures of `conftest` that use Docker, whether one of them is autouse)."""
    fixtures = _fixtures(conftest)
    docker = set(known)
    changed = True
    while changed:  # a fixture that requests a Docker fixture uses Docker too
        changed = False
        for name, (function, _) in fixtures.items():
            if name not in docker and (
                uses_docker_directly(function) or _requested(function) & docker
            ):
                docker.add(name)
                changed = True
    autouse = any(auto and name in docker for name, (_, auto) in fixtures.items())
    return docker, autouse


def uses_docker(module: ast.Module, folder_fixtures: set[str], folder_autouse: bool) -> bool:
    if folder_autouse or uses_docker_directly(module):
        return True
    local, _ = docker_fixtures(module, folder_fixtures)
    return any(
        _requested(node) & local for node in ast.walk(module) if isinstance(node, ast.FunctionDef)
    )


def marked_docker(module: ast.Module) -> bool:
    """True when a module-level `pytestmark` names pytest.mark.docker."""
    for node in module.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ):
            return "pytest.mark.docker" in ast.unparse(node.value)
    return False


def folder_context(folder: Path, root: Path) -> tuple[set[str], bool]:
    """Docker fixtures visible in `folder` (its conftests up to `root`), and autouse among them."""
    known, autouse = set(SHARED_DOCKER_FIXTURES), False
    chain = [p for p in (folder, *folder.parents) if p == root or root in p.parents]
    for directory in reversed(chain):
        conftest = directory / "conftest.py"
        if conftest.is_file():
            more, auto = docker_fixtures(ast.parse(conftest.read_text(encoding="utf-8")), known)
            known |= more
            autouse = autouse or auto
    return known, autouse


def unmarked_docker_modules(root: Path) -> list[str]:
    problems = []
    for path in sorted(root.rglob("test_*.py")):
        if path.is_relative_to(root / "unit"):
            continue  # no Docker there at all: test_unit_modules_use_no_docker_helper
        module = ast.parse(path.read_text(encoding="utf-8"))
        fixtures, autouse = folder_context(path.parent, root)
        if uses_docker(module, fixtures, autouse) and not marked_docker(module):
            problems.append(str(path.relative_to(root)))
    return problems


def test_every_docker_test_module_carries_the_docker_marker() -> None:
    problems = unmarked_docker_modules(TESTS)
    assert problems == [], f"add `pytestmark = pytest.mark.docker` to: {problems}"


def test_the_walk_finds_the_docker_folders() -> None:
    """The check above looks at something: the Docker-backed modules are recognised as such."""
    found = set()
    for path in sorted(TESTS.rglob("test_*.py")):
        fixtures, autouse = folder_context(path.parent, TESTS)
        if uses_docker(ast.parse(path.read_text(encoding="utf-8")), fixtures, autouse):
            found.add(path.parent.name)
    for folder in ("builds", "bundle", "devbox", "docker", "image", "publish", "slim"):
        assert folder in found, f"no Docker-backed module recognised in tests/{folder}"


# test_support_ci calls require_daemon with DOCKER_HOST at a socket nobody listens on.
UNIT_EXEMPT = {"test_support_ci.py"}


def unit_modules_using_docker_helpers(unit: Path) -> list[str]:
    helpers = DOCKER_MODULES[1:]  # the tests/support ones
    found = []
    for path in sorted(unit.rglob("*.py")):
        if path.name in UNIT_EXEMPT:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            imported = node.module if isinstance(node, ast.ImportFrom) else None
            called = _called_name(node) if isinstance(node, ast.Call) else ""
            if (imported or "").startswith(helpers) or called in DOCKER_CALLS - {"docker"}:
                found.append(path.name)
                break
    return found


def test_unit_modules_use_no_docker_helper(tmp_path: Path) -> None:
    assert unit_modules_using_docker_helpers(TESTS / "unit") == []
    _write(tmp_path, "test_sneaky.py", "from support.ci import require_daemon\nrequire_daemon()\n")
    assert unit_modules_using_docker_helpers(tmp_path) == ["test_sneaky.py"]


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


AUTOUSE_CONFTEST = """
import pytest
from support.ci import require_daemon

@pytest.fixture(autouse=True)
def engine():
    require_daemon()
"""
IMAGE_CONFTEST = """
import pytest
from support.ci import require_image

@pytest.fixture
def built():
    require_image("x", "make it")

@pytest.fixture
def project(built):
    return built
"""


@pytest.mark.parametrize(
    ("conftest", "module"),
    [
        pytest.param("", "import python_on_whales\n", id="imports-python-on-whales"),
        pytest.param("", "from support.dockercli import docker\n", id="imports-a-helper"),
        pytest.param("", "import subprocess\nsubprocess.run(['docker', 'ps'])\n", id="cli"),
        pytest.param("", "def test_x(forget_images): pass\n", id="shared-fixture"),
        pytest.param(AUTOUSE_CONFTEST, "def test_x(): pass\n", id="autouse-conftest"),
        pytest.param(IMAGE_CONFTEST, "def test_x(project): pass\n", id="fixture-chain"),
        pytest.param(
            "", "pytestmark = pytest.mark.slow\nimport python_on_whales\n", id="other-mark"
        ),
    ],
)
def test_an_unmarked_docker_module_is_reported(tmp_path: Path, conftest: str, module: str) -> None:
    folder = tmp_path / "suite"
    if conftest:
        _write(folder, "conftest.py", conftest)
    _write(folder, "test_thing.py", module)
    assert unmarked_docker_modules(tmp_path) == ["suite/test_thing.py"]
    _write(folder, "test_thing.py", "import pytest\npytestmark = pytest.mark.docker\n" + module)
    assert unmarked_docker_modules(tmp_path) == []


def test_a_module_without_docker_needs_no_marker(tmp_path: Path) -> None:
    _write(tmp_path / "suite", "conftest.py", IMAGE_CONFTEST)
    _write(tmp_path / "suite", "test_plain.py", "def test_x(tmp_path): assert 'docker'\n")
    assert unmarked_docker_modules(tmp_path) == []
