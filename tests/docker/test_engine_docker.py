"""bakery.engine against the real engine: versions, builds, caching, errors, contexts, interrupts."""

from __future__ import annotations

import secrets
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.ci import require_image
from support.dockercli import BASE_TAG
from support.engine_tests import ctrl_c_when, pids_running, write_dockerfile
from support.wait import wait_until

from bakery import base, engine
from bakery.errors import DockerError, EngineMissingError, UsageError
from bakery.matrix import load_matrix

pytestmark = pytest.mark.docker

NO_DAEMON = "unix:///nonexistent/bakery-test.sock"

Forget = Callable[[str], str]


def spec_for(context: Path, **changes: object) -> engine.BuildSpec:
    options: dict[str, object] = {
        "context": context,
        "dockerfile": context / "Dockerfile",
        "log_path": context.parent / "logs" / "build.log",
    }
    options.update(changes)
    return engine.BuildSpec(**options)  # type: ignore[arg-type]  # test helper, fields by name


# --- 1. the engine answers ----------------------------------------------------------------


def test_daemon_and_buildx_answer(engine_info: engine.EngineInfo) -> None:
    assert engine_info.server_version
    assert engine_info.api_version
    assert engine.parse_version(engine_info.buildx_version) >= (0, 13)


# --- 3. builds and the cache --------------------------------------------------------------

LAYERED = """\
FROM {BASE}
COPY first.txt /first.txt
RUN echo built > /built.txt
COPY last.txt /last.txt
"""


@pytest.fixture
def layered_context(build_dir: Path, unique: str) -> Path:
    (build_dir / "first.txt").write_text(f"first {unique}\n", encoding="utf-8")
    (build_dir / "last.txt").write_text(f"last {unique}\n", encoding="utf-8")
    write_dockerfile(build_dir, LAYERED)
    return build_dir


def test_build_returns_image_tags_and_log(
    base_image: base.BaseResult, layered_context: Path, unique: str, forget_images: Forget
) -> None:
    tag = forget_images(f"bakery-test/build:{unique}")
    seen: list[str] = []
    outcome = engine.build_image(spec_for(layered_context, tags=(tag,)), on_step=seen.append)
    forget_images(outcome.image_id)

    info = engine.inspect_image(tag)
    assert info is not None
    assert info.id == outcome.image_id  # metadata file's containerimage.digest is the image id
    assert outcome.image_id.startswith("sha256:")
    assert outcome.log_path.is_file()
    assert "#1 " in outcome.log_path.read_text(encoding="utf-8")
    assert outcome.steps_total == 3
    assert seen == [
        "[2/4] COPY first.txt /first.txt",
        "[3/4] RUN echo built > /built.txt",
        "[4/4] COPY last.txt /last.txt",
    ]


def test_build_without_tags_leaves_image_untagged(
    base_image: base.BaseResult, layered_context: Path, forget_images: Forget
) -> None:
    outcome = engine.build_image(spec_for(layered_context))
    forget_images(outcome.image_id)
    info = engine.inspect_image(outcome.image_id)
    assert info is not None
    assert info.repo_tags == ()


def test_identical_rebuild_is_fully_cached(
    base_image: base.BaseResult, layered_context: Path, forget_images: Forget
) -> None:
    first = engine.build_image(spec_for(layered_context))
    forget_images(first.image_id)
    second = engine.build_image(spec_for(layered_context))
    assert second.image_id == first.image_id
    assert second.steps_total == 3
    assert second.steps_cached == second.steps_total
    assert second.steps_run == ()


def test_changed_last_file_reruns_only_last_step(
    base_image: base.BaseResult, layered_context: Path, unique: str, forget_images: Forget
) -> None:
    first = engine.build_image(spec_for(layered_context))
    forget_images(first.image_id)
    (layered_context / "last.txt").write_text(f"changed {unique}\n", encoding="utf-8")
    second = engine.build_image(spec_for(layered_context))
    forget_images(second.image_id)
    assert second.image_id != first.image_id
    assert second.steps_run == ("[4/4] COPY last.txt /last.txt",)
    assert second.steps_cached == 2


# --- 5. errors ------------------------------------------------------------------------------


def test_failing_run_gives_docker_error_with_tail_and_log(
    base_image: base.BaseResult, build_dir: Path, unique: str
) -> None:
    write_dockerfile(
        build_dir,
        f"FROM {{BASE}}\nRUN echo 'to stdout {unique}'; echo 'broke {unique}' >&2; exit 3\n",
    )
    spec = spec_for(build_dir)
    with pytest.raises(DockerError) as caught:
        engine.build_image(spec)
    error = caught.value
    assert error.return_code not in (None, 0)
    assert f"broke {unique}" in error.stderr_tail
    assert "exit code: 3" in error.what
    assert error.log_path == spec.log_path
    assert f"broke {unique}" in spec.log_path.read_text(encoding="utf-8")
    assert "buildx" in error.command


def test_no_daemon_gives_engine_missing_with_fix() -> None:
    with engine.connected(NO_DAEMON), pytest.raises(EngineMissingError) as caught:
        engine.check_engine()
    assert "install-engine.sh" in caught.value.fix
    assert NO_DAEMON in caught.value.what


def test_no_daemon_from_docker_host_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", NO_DAEMON)
    assert not engine.daemon_answers()
    with pytest.raises(EngineMissingError) as caught:
        engine.inspect_image(BASE_TAG)
    assert "install-engine.sh" in caught.value.fix


def test_no_daemon_during_build_gives_engine_missing(layered_context: Path) -> None:
    with engine.connected(NO_DAEMON), pytest.raises(EngineMissingError):
        engine.build_image(spec_for(layered_context))


def test_missing_secret_file_fails_before_docker(layered_context: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    spec = spec_for(layered_context, secrets=(engine.Secret("ca", missing),))
    # With no daemon reachable, any docker call would raise EngineMissingError instead.
    with engine.connected(NO_DAEMON), pytest.raises(UsageError) as caught:
        engine.build_image(spec)
    assert str(missing) in caught.value.what


def test_unreachable_base_image_suggests_base_map(build_dir: Path, unique: str) -> None:
    write_dockerfile(build_dir, f"FROM bakery-test/nonexistent-{unique}:1\nRUN true\n")
    with pytest.raises(DockerError) as caught:
        engine.build_image(spec_for(build_dir))
    error = caught.value
    assert f"bakery-test/nonexistent-{unique}:1" in error.what
    assert "could not be pulled" in error.what
    assert "--base-map" in error.fix
    assert "python build.py base" in error.fix


# --- 6. named build contexts ----------------------------------------------------------------

NAMED_CONTEXT = """\
FROM scratch AS pip-local-0
FROM {BASE}
RUN --mount=type=bind,from=pip-local-0,target=/mnt/x \\
    if [ -f /mnt/x/wheel.txt ]; then echo "saw $(cat /mnt/x/wheel.txt)"; else echo saw-nothing; fi \\
    > /seen.txt
"""


@pytest.fixture
def named_context(build_dir: Path) -> Path:
    write_dockerfile(build_dir, NAMED_CONTEXT)
    return build_dir


def read_in_image(image_id: str, command: str) -> str:
    result = engine.run_container(image_id, ["bash", "-c", command], timeout=60)
    assert result.return_code == 0, result.stderr
    return result.stdout.strip()


def test_named_context_visible_during_run_only(
    base_image: base.BaseResult,
    named_context: Path,
    tmp_path: Path,
    unique: str,
    forget_images: Forget,
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "wheel.txt").write_text(f"wheel-{unique}", encoding="utf-8")
    spec = spec_for(named_context, build_contexts={"pip-local-0": wheels})
    image_id = forget_images(engine.build_image(spec).image_id)
    assert read_in_image(image_id, "cat /seen.txt") == f"saw wheel-{unique}"
    assert read_in_image(image_id, "ls -A /mnt/x 2>/dev/null | wc -l") == "0"


def test_named_context_defaults_to_empty_scratch(
    base_image: base.BaseResult, named_context: Path, forget_images: Forget
) -> None:
    outcome = engine.build_image(spec_for(named_context))
    image_id = forget_images(outcome.image_id)
    assert read_in_image(image_id, "cat /seen.txt") == "saw-nothing"
    log = outcome.log_path.read_text(encoding="utf-8")
    metadata = [line for line in log.splitlines() if "load metadata for" in line]
    assert metadata, "the log should show the base image's metadata lookup"
    assert not [line for line in metadata if "scratch" in line]  # no pull attempted for scratch


def test_docker_image_context_maps_a_base_name_to_a_local_image(
    base_image: base.BaseResult, build_dir: Path, unique: str, forget_images: Forget
) -> None:
    alias = f"registry.invalid/bakery-test/base-{unique}:1"  # would fail if it were pulled
    write_dockerfile(build_dir, f"FROM {alias}\nRUN echo mapped > /mapped.txt\n")
    spec = spec_for(build_dir, build_contexts={alias: f"docker-image://{BASE_TAG}"})
    image_id = forget_images(engine.build_image(spec).image_id)
    assert read_in_image(image_id, "cat /mapped.txt") == "mapped"


# --- interrupts -----------------------------------------------------------------------------


@pytest.fixture
def default_sigint() -> Iterator[None]:
    """Python's own Ctrl+C handler, whatever this process inherited.

    A test run started as a background job of a non-interactive shell inherits SIGINT as
    ignored; Python then installs no handler and a SIGINT is dropped (the build "returned
    normally"). The product keeps an ignored SIGINT ignored; the test needs the handler.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def sleeper_dockerfile(build_dir: Path) -> str:
    """A RUN that prints a marker, then sleeps with a duration unique to this test."""
    sleeper = f"sleep 120.{secrets.randbelow(10**6):06d}"
    write_dockerfile(build_dir, f"FROM {{BASE}}\nRUN echo started-{sleeper[6:]}; exec {sleeper}\n")
    return sleeper


def marker_logged(spec: engine.BuildSpec, sleeper: str) -> bool:
    """The RUN's own output reached the build log: the step is running, the sleep follows."""
    if not spec.log_path.is_file():
        return False
    return f"started-{sleeper[6:]}" in spec.log_path.read_text(encoding="utf-8", errors="replace")


def test_interrupt_stops_the_build_and_propagates(
    base_image: base.BaseResult, build_dir: Path, default_sigint: None
) -> None:
    sleeper = sleeper_dockerfile(build_dir)
    spec = spec_for(build_dir)

    def running() -> bool:  # Ctrl+C once the RUN runs: its marker is logged, its sleep exists
        return marker_logged(spec, sleeper) and bool(pids_running(sleeper))

    with ctrl_c_when(running) as sent, pytest.raises(KeyboardInterrupt):
        engine.build_image(spec)
    assert sent == [True], "the RUN never started, so the interrupt proved nothing"
    wait_until(lambda: not pids_running(sleeper), 20, "the cancelled RUN to disappear")
    assert not pids_running(str(build_dir)), "a docker buildx process outlived the interrupt"


def test_cancel_builds_stops_a_build_running_in_another_thread(
    base_image: base.BaseResult, build_dir: Path, unique: str, forget_images: Forget
) -> None:
    """Ctrl+C reaches only the main thread; builds in worker threads are stopped through cancel."""
    sleeper = sleeper_dockerfile(build_dir)
    tag = forget_images(f"trust-input-cancel:{unique}")
    spec = spec_for(build_dir, tags=(tag,))
    cancel = threading.Event()
    outcome: list[BaseException | engine.BuildOutcome] = []

    def build() -> None:
        try:
            outcome.append(engine.build_image(spec, cancel=cancel))
        except BaseException as exc:  # handed to the test below
            outcome.append(exc)

    worker = threading.Thread(target=build, daemon=True)
    worker.start()
    wait_until(lambda: marker_logged(spec, sleeper) and bool(pids_running(sleeper)), 600, "the RUN")
    engine.cancel_builds(cancel)
    worker.join(timeout=60)
    assert not worker.is_alive(), "the build went on after cancel_builds"
    assert len(outcome) == 1
    assert isinstance(outcome[0], DockerError), outcome
    wait_until(lambda: not pids_running(sleeper), 20, "the cancelled RUN to disappear")
    assert engine.inspect_image(tag) is None, "a cancelled build was tagged"


def test_a_build_started_after_cancel_stops_at_once(
    base_image: base.BaseResult, build_dir: Path
) -> None:
    sleeper = sleeper_dockerfile(build_dir)
    cancel = threading.Event()
    engine.cancel_builds(cancel)
    with pytest.raises(DockerError):
        engine.build_image(spec_for(build_dir), cancel=cancel)
    assert not pids_running(sleeper)


# --- containers -----------------------------------------------------------------------------


def test_run_container_separates_streams_and_removes_container(
    base_image: base.BaseResult, unique: str, new_name: Callable[[], str]
) -> None:
    name = new_name()  # removed by the fixture too, should the check below fail
    result = engine.run_container(
        BASE_TAG,
        ["bash", "-c", 'echo "out $GREETING"; echo err >&2; exit 7'],
        env={"GREETING": unique},
        name=name,
        timeout=60,
    )
    assert (result.return_code, result.stdout, result.stderr) == (7, f"out {unique}\n", "err\n")
    assert not engine.container_exists(name)


def test_run_container_timeout_kills_and_removes(
    base_image: base.BaseResult, new_name: Callable[[], str]
) -> None:
    name = new_name()
    with pytest.raises(DockerError) as caught:
        engine.run_container(BASE_TAG, ["sleep", "300"], name=name, timeout=2)
    assert "timed out" in caught.value.what
    assert not engine.container_exists(name)


# --- never remove a container bakery did not create in this call ---------------------------


@pytest.fixture
def users_container(base_image: base.BaseResult, unique: str) -> Iterator[str]:
    """A container that is not bakery's (like a dev container), with an anonymous volume."""
    name = f"trust-data-user-{unique}"
    created = subprocess.run(
        ["docker", "create", "--name", name, "-v", "/data", BASE_TAG, "sleep", "300"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    container_id = created.stdout.strip()
    yield container_id
    subprocess.run(
        ["docker", "rm", "-f", "-v", container_id], capture_output=True, timeout=60, check=False
    )


def _still_there(container_id: str) -> bool:
    info = engine.inspect_container(container_id)
    return info is not None


def test_run_container_with_a_taken_name_leaves_that_container(users_container: str) -> None:
    info = engine.inspect_container(users_container)
    assert info is not None
    with pytest.raises(DockerError):
        engine.run_container(BASE_TAG, ["true"], name=info.name, timeout=60)
    assert _still_there(users_container)


def test_run_foreground_with_a_taken_name_leaves_that_container(users_container: str) -> None:
    info = engine.inspect_container(users_container)
    assert info is not None
    spec = engine.ContainerSpec(
        name=info.name, image=BASE_TAG, command=("true",), user="0:0", workdir="/"
    )
    with pytest.raises(DockerError, match="docker could not start a container"):
        engine.run_foreground(spec, tty=False, timeout=120)
    assert _still_there(users_container)


def test_run_foreground_removes_its_own_container_when_it_times_out(
    base_image: base.BaseResult, new_name: Callable[[], str]
) -> None:
    name = new_name()
    spec = engine.ContainerSpec(
        name=name, image=BASE_TAG, command=("sleep", "300"), user="0:0", workdir="/"
    )
    with pytest.raises(DockerError, match="timed out"):
        engine.run_foreground(spec, tty=False, timeout=5)
    assert engine.inspect_container(name) is None


def test_build_py_run_with_the_name_of_a_users_container_leaves_it(
    users_container: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reported case: `run --target cpu --name <dev container> -- true`."""
    from bakery import cli  # noqa: PLC0415

    root = Path(__file__).resolve().parents[2]
    variant = next(
        v for v in load_matrix(root / "matrix.toml").variants if v.id == "2.13.0-cpu-py3.11"
    )
    require_image(variant.image, f"python build.py --variant {variant.id}")
    info = engine.inspect_container(users_container)
    assert info is not None
    argv = [
        "run",
        "--matrix",
        str(root / "matrix.toml"),
        "--target",
        "cpu",
        "--name",
        info.name,
        "--",
        "true",
    ]
    assert cli.main(argv) == 2
    assert f"a container named {info.name} already exists" in capsys.readouterr().err
    assert _still_there(users_container)
