"""Pure tests of bakery.engine's parsing and error mapping, and bakery.base's helpers (no Docker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bakery import base, engine
from bakery.engine import builds
from bakery.errors import DockerError, EngineMissingError, UsageError

# A plain BuildKit log as buildx 0.13 prints it (trimmed), with one cached and one run step.
CACHED_THEN_RUN = """\
#0 building with "default" instance using docker driver

#2 [internal] load metadata for docker.io/bakery/debian:bookworm
#2 DONE 0.0s

#4 [1/3] FROM docker.io/bakery/debian:bookworm
#4 DONE 0.0s

#6 [2/3] COPY first.txt /first.txt
#6 CACHED

#7 [3/3] RUN make
#7 0.120 compiling
#7 DONE 0.3s

#8 exporting to image
#8 writing image sha256:94bc done
#8 DONE 0.0s
"""

FAILED_RUN = """\
#5 [stage-1 2/2] RUN ./configure
#5 0.101 checking for gcc
#5 0.102 configure: error: no acceptable C compiler
#5 ERROR: process "/bin/sh -c ./configure" did not complete successfully: exit code: 77
------
 > [stage-1 2/2] RUN ./configure:
------
ERROR: failed to solve: process "/bin/sh -c ./configure" did not complete successfully: exit code: 77
"""

MISSING_BASE = """\
#2 [internal] load metadata for docker.io/some/thing:1
#2 ERROR: failed to do request: Head "https://registry-1.docker.io/v2/some/thing/manifests/1": dial tcp: no such host
ERROR: failed to solve: some/thing:1: failed to resolve source metadata for docker.io/some/thing:1: failed to do request: no such host
"""


def parse(text: str) -> engine.BuildLog:
    log = engine.BuildLog()
    for line in text.splitlines():
        log.feed(line)
    return log


def spec(tmp_path: Path, **changes: object) -> engine.BuildSpec:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n", encoding="utf-8")
    options: dict[str, object] = {
        "context": tmp_path,
        "dockerfile": tmp_path / "Dockerfile",
        "log_path": tmp_path / "build.log",
    }
    options.update(changes)
    return engine.BuildSpec(**options)  # type: ignore[arg-type]  # test helper, fields by name


# --- the build log ------------------------------------------------------------------------


def test_steps_exclude_from_and_internal_vertices() -> None:
    outcome = engine.summarize_build(parse(CACHED_THEN_RUN), "sha256:x", 1.0, Path("l"))
    assert (outcome.steps_total, outcome.steps_cached) == (2, 1)
    assert outcome.steps_run == ("[3/3] RUN make",)


def test_feed_reports_each_step_once_when_it_starts() -> None:
    log = engine.BuildLog()
    started = [s for line in CACHED_THEN_RUN.splitlines() if (s := log.feed(line)) is not None]
    assert started == ["[2/3] COPY first.txt /first.txt", "[3/3] RUN make"]


def test_failed_step_keeps_its_output_and_error() -> None:
    failed = parse(FAILED_RUN).failed()
    assert failed is not None
    assert failed.name == "[stage-1 2/2] RUN ./configure"
    assert failed.output == ["checking for gcc", "configure: error: no acceptable C compiler"]
    assert "exit code: 77" in failed.error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[2/3] RUN make", "[2/3] RUN make"),
        ("[2/3] RUN a    b\tc", "[2/3] RUN a b c"),
        ("[1/2] RUN " + "x" * 100, "[1/2] RUN " + "x" * 61 + "…"),
    ],
    ids=["short", "whitespace", "truncated"],
)
def test_short_step_name(text: str, expected: str) -> None:
    assert engine.short_step_name(text) == expected


# --- errors -----------------------------------------------------------------------------------


def test_failed_run_becomes_docker_error_with_step_and_exit_code(tmp_path: Path) -> None:
    error = builds._build_error(spec(tmp_path), ["docker", "buildx"], 1, parse(FAILED_RUN))
    assert isinstance(error, DockerError)
    assert "[stage-1 2/2] RUN ./configure" in error.what
    assert "exit code: 77" in error.what
    assert "no acceptable C compiler" in error.stderr_tail
    assert error.log_path == tmp_path / "build.log"


def test_missing_base_becomes_docker_error_suggesting_base_map(tmp_path: Path) -> None:
    error = builds._build_error(spec(tmp_path), ["docker"], 1, parse(MISSING_BASE))
    assert isinstance(error, DockerError)
    assert "base image some/thing:1 could not be pulled" in error.what
    assert "--base-map some/thing:1=" in error.fix
    assert "python build.py base" in error.fix


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?",
            "no Docker daemon answers",
        ),
        ("error during connect: Get http://...: dial unix", "no Docker daemon answers"),
        ("docker: 'buildx' is not a docker command.", "buildx plugin is missing"),
        ("unknown command: docker buildx", "buildx plugin is missing"),
        ("Error response from daemon: No such image: x", None),
    ],
    ids=["socket", "connect", "buildx-old-cli", "buildx-new-cli", "other"],
)
def test_classify_engine_problem(output: str, expected: str | None) -> None:
    problem = engine.classify_engine_problem(output)
    if expected is None:
        assert problem is None
    else:
        assert isinstance(problem, EngineMissingError)
        assert expected in problem.what
        assert "install-engine.sh" in problem.fix


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("github.com/docker/buildx 0.13.1+ds1 0.13.1+ds1-3", (0, 13, 1)),
        ("github.com/docker/buildx v0.12.0 abcdef", (0, 12, 0)),
        ("26.1", (26, 1, 0)),
        ("nonsense", ()),
    ],
)
def test_parse_version(text: str, expected: tuple[int, ...]) -> None:
    assert engine.parse_version(text) == expected


def test_tail_lines_keeps_the_last_non_empty_lines() -> None:
    text = "\n".join(f"line {i}" for i in range(30)) + "\n\n"
    assert engine.tail_lines(text, 3) == "line 27\nline 28\nline 29"


# --- checks before docker runs ------------------------------------------------------------------


def test_missing_secret_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    with pytest.raises(UsageError) as caught:
        builds._check_spec(spec(tmp_path, secrets=(engine.Secret("ca", missing),)))
    assert str(missing) in caught.value.what


def test_missing_named_context_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="pip-local-0"):
        builds._check_spec(spec(tmp_path, build_contexts={"pip-local-0": tmp_path / "nope"}))


def test_string_contexts_pass_through_unchecked(tmp_path: Path) -> None:
    built = spec(tmp_path, build_contexts={"base": "docker-image://bakery/debian:bookworm"})
    builds._check_spec(built)
    command = engine.build_command(built, tmp_path / "m.json")
    assert (
        command[command.index("--build-context") + 1]
        == "base=docker-image://bakery/debian:bookworm"
    )


def test_build_command_passes_secrets_by_file_and_contexts_by_name(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    built = spec(
        tmp_path,
        tags=("a:1",),
        build_args={"PY": "3.11"},
        secrets=(engine.Secret("ca", ca),),
        build_contexts={"pip-local-0": tmp_path},
        target="final",
    )
    command = engine.build_command(built, tmp_path / "meta.json")
    tail = command[command.index("buildx") :]
    assert tail[:4] == ["buildx", "build", "--progress", "plain"]
    for flag, value in [
        ("--secret", f"id=ca,src={ca}"),
        ("--build-context", f"pip-local-0={tmp_path}"),
        ("--build-arg", "PY=3.11"),
        ("--metadata-file", str(tmp_path / "meta.json")),
        ("--tag", "a:1"),
        ("--target", "final"),
    ]:
        assert tail[tail.index(flag) + 1] == value
    assert tail[-1] == str(tmp_path)


def test_build_command_without_tags_has_no_tag_flag(tmp_path: Path) -> None:
    assert "--tag" not in engine.build_command(spec(tmp_path), tmp_path / "m.json")


# --- bakery.base helpers ------------------------------------------------------------------------

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""

NODESOURCE = """\
Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro
Components: main
"""


def apt_root(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "etc" / "apt" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (tmp_path / "etc" / "apt" / "sources.list.d").mkdir(parents=True, exist_ok=True)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"sources.list.d/debian.sources": DEB822}, "http://mirror.example/debian"),
        (
            {"sources.list.d/a.sources": NODESOURCE, "sources.list.d/debian.sources": DEB822},
            "http://mirror.example/debian",
        ),
        (
            {
                "sources.list": "# comment\ndeb [arch=amd64] http://one.example/debian/ bookworm main\n"
            },
            "http://one.example/debian",
        ),
        (
            {
                "sources.list": "deb http://one.example/debian-security bookworm-security main\n"
                "deb http://two.example/mirror bookworm main\n"
            },
            "http://two.example/mirror",
        ),
    ],
    ids=["deb822", "skips-non-debian", "one-line-options", "skips-security"],
)
def test_mirror_from_apt_sources(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    assert base.mirror_from_apt_sources(apt_root(tmp_path, files)) == expected


def test_mirror_missing_is_a_usage_error_suggesting_debian_mirror_flag(tmp_path: Path) -> None:
    root = apt_root(tmp_path, {"sources.list.d/node.sources": NODESOURCE})
    with pytest.raises(UsageError) as caught:
        base.mirror_from_apt_sources(root)
    assert "--debian-mirror" in caught.value.fix


def test_base_changes_give_path_lang_cmd_and_quoted_labels() -> None:
    changes = base.base_changes("bookworm", "http://m.example/debian", "2026-01-01T00:00:00Z")
    assert f"ENV PATH={base.IMAGE_PATH}" in changes
    assert "ENV LANG=C.UTF-8" in changes
    assert 'CMD ["bash"]' in changes
    assert (
        'LABEL org.opencontainers.image.source="debootstrap bookworm http://m.example/debian"'
        in changes
    )
    assert 'LABEL io.bakery.base="debootstrap"' in changes


@pytest.fixture
def no_existing_base(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "inspect_image", lambda ref: None)


@pytest.mark.usefixtures("no_existing_base")
def test_bootstrap_base_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bakery.base.os.geteuid", lambda: 1000)
    with pytest.raises(UsageError, match="root") as caught:
        base.bootstrap_base(base.BaseOptions())
    assert "sudo" in caught.value.fix


@pytest.mark.usefixtures("no_existing_base")
def test_bootstrap_base_needs_debootstrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bakery.base.os.geteuid", lambda: 0)
    monkeypatch.setattr("bakery.base.shutil.which", lambda name: None)
    with pytest.raises(EngineMissingError, match="debootstrap") as caught:
        base.bootstrap_base(base.BaseOptions())
    assert "apt-get install debootstrap" in caught.value.fix
