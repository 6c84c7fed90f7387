"""A shared BuildKit cache through a registry, proven with two daemons and a real registry.

Daemon A (this machine's) builds the cpu slim variant with `--cache-to type=inline` (the cache
the daemon's own `docker` driver can export), and the image goes to a `docker-registry`. Daemon
B is a second, empty dockerd in its own network namespace with no route anywhere; the registry
runs in that namespace on its loopback. After a training-code change B builds the same variant
with only `--cache-from type=registry,...`: every step but the code layer comes from the
registry's cache (B cannot reach a Debian mirror, so a step that really ran would fail), and
the build's step report says only `COPY stylelora` ran. The control: without --cache-from the
same build on B fails at the apt step. Bytes B pulled come from the registry's access log.

B gets the base image by `docker load` (its digest must equal A's for the cache key to match),
and A's image reaches the registry with skopeo run inside B's namespace (reading A's daemon over
its socket): A's own `docker push` cannot reach a registry in another namespace.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.ci import require_daemon
from support.dockercli import BASE_TAG
from support.offline_daemon import OfflineDaemon, offline_daemon
from support.project_copy import BASE_MAP, copy_project

from bakery import engine
from bakery.cli import main

pytestmark = [pytest.mark.docker, pytest.mark.slow]
SLIM = "2.13.0-cpu-py3.11-slim"
BASE = BASE_TAG
REGISTRY = "127.0.0.1:5000"  # loopback of B's own namespace: no collision with the host's
READY_TIMEOUT = 60.0


def nsenter(daemon: OfflineDaemon) -> list[str]:
    if daemon.process is None:
        raise AssertionError("daemon B is not running")
    return ["nsenter", f"--net=/proc/{daemon.process.pid}/ns/net", "--"]


@dataclass
class NetnsRegistry:
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def log(self) -> str:
        return (self.root / "registry.log").read_text(encoding="utf-8", errors="replace")

    def blob_bytes(self, since: int = 0) -> int:
        """Bytes of blobs served (GET .../blobs/...) after log offset `since`."""
        total = 0
        for line in self.log[since:].splitlines():
            if "response completed" in line and "/blobs/" in line and "method=GET" in line:
                match = re.search(r"http\.response\.written=(\d+)", line)
                total += int(match.group(1)) if match else 0
        return total


@pytest.fixture
def daemon_b(tmp_path: Path) -> Iterator[OfflineDaemon]:
    require_daemon()
    for tool in ("skopeo", "docker-registry", "nsenter"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (scripts/setup.sh installs it)")
    with offline_daemon() as daemon:
        yield daemon


@pytest.fixture
def registry(daemon_b: OfflineDaemon, tmp_path: Path) -> Iterator[NetnsRegistry]:
    root = tmp_path / "registry"
    root.mkdir()
    subprocess.run([*nsenter(daemon_b), "ip", "link", "set", "lo", "up"], check=True, timeout=30)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\nlog: {level: info}\n"
        f"storage: {{filesystem: {{rootdirectory: {root / 'data'}}}}}\n"
        f"http: {{addr: '{REGISTRY}', secret: scaleout-cache-tests}}\n",
        encoding="utf-8",
    )
    with (root / "registry.log").open("ab") as log:
        process = subprocess.Popen(
            [*nsenter(daemon_b), "docker-registry", "serve", str(config)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    served = NetnsRegistry(root, process)
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while f"listening on {REGISTRY}" not in served.log:
            assert process.poll() is None, served.log[-2000:]
            assert time.monotonic() < deadline, "registry did not start"
            time.sleep(0.1)  # poll interval of a deadline-bound wait
        yield served
    finally:
        process.kill()
        process.wait(timeout=30)


@pytest.fixture
def repository() -> Iterator[str]:
    name = f"scaleout-cache-{uuid.uuid4().hex[:8]}"
    yield name
    engine.remove_image(f"{name}:{SLIM}")


def build(project: Path, repository: str, *extra: str) -> tuple[int, float]:
    """bakery's build of the slim variant on the connected daemon: (exit code, seconds)."""
    started = time.monotonic()
    code = main(["--matrix", str(project / "matrix.toml"), "--variant", SLIM, "--base-map", BASE_MAP,
                 "--no-host-pip", "--repository", repository, "--json", *extra])  # fmt: skip
    return code, time.monotonic() - started


def built(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    records: list[dict[str, object]] = json.loads(capsys.readouterr().out)
    return records[0]


def touch_training_code(project: Path) -> None:
    target = project / "stylelora" / "__init__.py"
    target.write_text(
        target.read_text(encoding="utf-8") + f"\n# {uuid.uuid4().hex}\n", encoding="utf-8"
    )


def test_daemon_b_reuses_daemon_a_cache_from_the_registry(
    daemon_b: OfflineDaemon, registry: NetnsRegistry, repository: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    project = copy_project(tmp_path / "project")
    cache = f"{REGISTRY}/scaleout-cache:{SLIM}"
    # A: cold (--no-cache) for the reference time, with the inline cache in the image
    code, cold_a = build(project, repository, "--no-cache", "--cache-to", "type=inline")
    assert code == 0
    built(capsys)
    archive = tmp_path / "a.tar"  # skopeo 1.9's docker-daemon: speaks API 1.22, docker 26 refuses
    subprocess.run(
        ["docker", "save", "-o", str(archive), f"{repository}:{SLIM}"], check=True, timeout=600
    )
    copied = subprocess.run([*nsenter(daemon_b), "skopeo", "copy", "--dest-tls-verify=false",
                             f"docker-archive:{archive}", f"docker://{cache}"],
                            check=False, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    save = subprocess.run(["docker", "save", BASE], capture_output=True, check=True, timeout=600)
    load = subprocess.run(["docker", "-H", daemon_b.host, "load"], input=save.stdout,
                          capture_output=True, check=True, timeout=600)  # fmt: skip
    assert load.returncode == 0
    touch_training_code(project)
    with engine.connected(daemon_b.host):
        # control: B alone cannot build it (no network for the apt step)
        code, _ = build(project, repository)
        assert code != 0, "B has no network: without the cache the apt step must fail"
        capsys.readouterr()
        offset = len(registry.log)
        code, warm_b = build(project, repository, "--cache-from", f"type=registry,ref={cache}")
        assert code == 0
        record = built(capsys)
    steps_run = record["steps_run"]
    assert isinstance(steps_run, list)
    # the code layer, and the WORKDIR after it (its parent changed); nothing before it
    assert "COPY stylelora" in str(steps_run[0]), steps_run
    assert all(re.search(r"\] (COPY stylelora|WORKDIR) ", str(s)) for s in steps_run), steps_run
    pulled = registry.blob_bytes(offset)
    assert pulled > 0, "the cached layers came from the registry"
    figures = {"cold_build_on_A_seconds": round(cold_a, 1), "warm_build_on_B_seconds": round(warm_b, 1),
               "bytes_pulled_by_B": pulled, "base_loaded_bytes": len(save.stdout),
               "steps_run_on_B": steps_run}  # fmt: skip
    print(json.dumps(figures))
