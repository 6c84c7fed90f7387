"""Helpers for the publish tests: a real registry with htpasswd auth, small images, test state,
and a way for the offline daemon (support.offline_daemon) to reach a registry on loopback."""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bakery import testrun
from bakery.matrix import Variant, load_matrix
from support.dockercli import BASE_TAG, docker
from support.offline_daemon import OfflineDaemon

ROOT = Path(__file__).resolve().parents[2]
REAL_CPU_IMAGE = "ghcr.io/example-lab/bakery:2.13.0-cpu-py3.11"
USER = "publisher"
CPU_FULL = "2.13.0-cpu-py3.11"
CPU_SLIM = "2.13.0-cpu-py3.11-slim"
START_TIMEOUT = 20.0
POLL_SECONDS = 0.05  # poll interval of deadline-bound waits, not a synchronisation sleep


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Registry:
    """One `docker-registry serve` (distribution 2.8) on 127.0.0.1 with htpasswd auth."""

    root: Path
    password: str
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        htpasswd = self.root / "htpasswd"
        subprocess.run(
            ["htpasswd", "-B", "-i", "-c", str(htpasswd), USER],
            input=self.password.encode(),
            capture_output=True,
            check=True,
            timeout=30,
        )
        self.port = free_port()
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: info}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.root / 'data'}}}}}\n"
            f"http: {{addr: '{self.host}', secret: bakery-publish-tests}}\n"
            f"auth: {{htpasswd: {{realm: bakery-tests, path: {htpasswd}}}}}\n",
            encoding="utf-8",
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                ["docker-registry", "serve", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry not ready after {START_TIMEOUT}s")
            time.sleep(POLL_SECONDS)

    def answers(self) -> bool:
        """True once /v2/ answers (401 without credentials: htpasswd is on)."""
        try:
            with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2):
                return False  # no authentication asked for: not the registry we configured
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        except OSError:
            return False

    def stop(self) -> None:
        """Stop it now (SIGKILL: a registry that dies, not one that says goodbye)."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def build_small_image(tag: str, marker: str, context: Path) -> str:
    """A tiny image on the local base with its own content; returns its id."""
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(
        f"FROM {BASE_TAG}\n"
        f"RUN echo {marker} > /bakery-publish-test\n"
        f'LABEL io.bakery.variant="{marker}"\n',
        encoding="utf-8",
    )
    docker("buildx", "build", "--quiet", "--tag", tag, str(context), timeout=600)
    return docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


def write_project(root: Path, repository: str) -> Path:
    """The real matrix.toml, with the local images' repository replaced; returns its path."""
    text = (ROOT / "matrix.toml").read_text(encoding="utf-8")
    original = load_matrix(ROOT / "matrix.toml").project.repository
    root.mkdir(parents=True, exist_ok=True)
    matrix = root / "matrix.toml"
    matrix.write_text(text.replace(f'"{original}"', f'"{repository}"', 1), encoding="utf-8")
    return matrix


def mark_tested(matrix: Path, variant_ids: Sequence[str]) -> None:
    """Record passing suites for these variants' images, as `build.py test` does."""
    variants: list[Variant] = [v for v in load_matrix(matrix).variants if v.id in variant_ids]
    results = [
        testrun.SuiteResult(v.id, suite, "passed", 1, 0, 0, "")
        for v in variants
        for suite in testrun.SUITES.values()
    ]
    testrun.record_tested(variants, results, None, matrix.resolve().parent)


def files_containing(root: Path, needle: str, skip: Sequence[Path] = ()) -> list[Path]:
    """Files under `root` (except under `skip`) whose bytes contain `needle`."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file() or any(path.is_relative_to(s) for s in skip):
            continue
        if needle.encode() in path.read_bytes():
            found.append(path)
    return found


@dataclass(frozen=True)
class SmallImages:
    repository: str  # local repository the images are tagged under
    ids: dict[str, str]  # variant id -> image id


@dataclass(frozen=True)
class Project:
    """A project root holding a copy of the real matrix, so its state and reports stay in tmp."""

    root: Path
    matrix: Path
    repository: str

    @property
    def report(self) -> Path:
        return self.root / "report.json"


def registry_tags(registry: Registry, password: str, name: str) -> list[str]:
    """The tags the registry holds for `name` (read over HTTP with basic auth)."""
    token = base64.b64encode(f"{USER}:{password}".encode()).decode()
    request = urllib.request.Request(
        f"http://{registry.host}/v2/{name}/tags/list",
        headers={"Authorization": f"Basic {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
            tags: list[str] = json.load(answer).get("tags") or []
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return []
        raise
    return sorted(tags)


CLONE_NEWNET = 0x40000000


class LoopbackBridge:
    """Make a host port reachable at the same 127.0.0.1 port inside another network namespace.

    The offline daemon lives in its own empty network namespace (support/offline_daemon.py),
    so it cannot reach a registry on the host's loopback. This opens exactly one way in: a
    listening socket created inside that namespace (a helper thread enters it with setns(2)),
    whose connections are relayed to the host's 127.0.0.1:port. Nothing else is reachable.
    """

    def __init__(self, pid: int, port: int) -> None:
        self.port = port
        subprocess.run(
            ["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "link", "set", "lo", "up"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.listener = self._listen_inside(pid)
        self._stopping = threading.Event()
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _listen_inside(self, pid: int) -> socket.socket:
        made: list[socket.socket | BaseException] = []

        def enter_and_listen() -> None:  # this thread alone switches namespace, then ends
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                with open(f"/proc/{pid}/ns/net", "rb") as namespace:
                    if libc.setns(namespace.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), "setns into the daemon's namespace")
                listener = socket.create_server(("127.0.0.1", self.port))
                listener.settimeout(0.2)
                made.append(listener)
            except BaseException as exc:  # handed to the caller's thread below
                made.append(exc)

        thread = threading.Thread(target=enter_and_listen)
        thread.start()
        thread.join(timeout=30)
        if not made or isinstance(made[0], BaseException):
            raise RuntimeError(f"could not listen inside the namespace: {made}")
        return made[0]

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                inside, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            outside = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            for source, sink in ((inside, outside), (outside, inside)):
                threading.Thread(target=_relay, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self._stopping.set()
        self.listener.close()
        self._accepting.join(timeout=5)


def _relay(source: socket.socket, sink: socket.socket) -> None:
    source.settimeout(None)
    with contextlib.suppress(OSError):
        while chunk := source.recv(1 << 16):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def reachable_from(daemon: OfflineDaemon, registry: Registry) -> Iterator[None]:
    """Let the offline daemon (and nothing else in its namespace) reach `registry`."""
    if daemon.process is None:
        raise RuntimeError("the offline daemon is not running")
    bridge = LoopbackBridge(daemon.process.pid, registry.port)
    try:
        yield
    finally:
        bridge.close()
