"""A second, isolated Docker daemon on this machine that plays an offline server.

It has its own data root, exec root, pid file and socket, and its own empty network namespace
(`unshare --net`: no route anywhere, no registry), no bridge and no iptables rules: what an
air-gapped GPU server looks like to `docker load`. Containers on it run with `--network none`.

The namespace is not only for realism: a dockerd started with `--bridge=none` deletes the
`docker0` interface it finds at start-up (moby daemon/daemon_unix.go,
removeDefaultBridgeInterface), which in the host's namespace would cut every container of the
main daemon off the network. Reusable from any test folder:

    with offline_daemon() as server:
        server.docker("images")                     # the CLI against that daemon
        with engine.connected(server.host): ...     # bakery's engine against that daemon

Everything is under one short directory in /tmp (unix socket paths are limited to 107 bytes), and
`stop()` leaves nothing behind: the daemon and its containerd are stopped by pid, leftover mounts
unmounted, the directory removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
POLL_SECONDS = 0.1  # poll interval of deadline-bound waits, not a synchronisation sleep


class OfflineDaemonError(RuntimeError):
    """The second daemon could not be started (its log's tail is in the message)."""


@dataclass
class OfflineDaemon:
    """One isolated dockerd; `start()` it, use `host`/`docker()`, then `stop()`."""

    root: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        """The value for DOCKER_HOST / `docker -H` / `engine.connect()`."""
        return f"unix://{self.socket}"

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def exec_root(self) -> Path:
        return self.root / "x"

    @property
    def log_path(self) -> Path:
        return self.root / "dockerd.log"

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """An environment whose docker CLI talks to this daemon."""
        env = dict(os.environ if base is None else base)
        env["DOCKER_HOST"] = self.host
        env.pop("DOCKER_CONTEXT", None)
        return env

    def command(self) -> list[str]:
        config = self.root / "daemon.json"
        config.write_text("{}\n", encoding="utf-8")  # never the host's /etc/docker/daemon.json
        return [
            "unshare", "--net", "--",  # own network namespace: see the module docstring
            "dockerd",
            "--config-file", str(config),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.root / "dockerd.pid"),
            "-H", self.host,
            "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-masq=false",
            "--userland-proxy=false",
            "--log-level=warn",
        ]  # fmt: skip

    def start(self, timeout: float = START_TIMEOUT) -> None:
        for tool in ("dockerd", "unshare"):
            if shutil.which(tool) is None:
                raise OfflineDaemonError(f"{tool} is not on PATH (scripts/install-engine.sh)")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl+C in the terminal must not reach it first
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None and self.process.poll() is not None:
                raise OfflineDaemonError(
                    f"dockerd exited with {self.process.returncode}: {self.log_tail()}"
                )
            if self.socket.exists() and self.answers():
                return
            if time.monotonic() > deadline:
                raise OfflineDaemonError(f"dockerd not ready after {timeout:g}s: {self.log_tail()}")
            time.sleep(POLL_SECONDS)

    def answers(self) -> bool:
        done = self.docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=10)
        return done.returncode == 0 and bool(done.stdout.strip())

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def docker(
        self, *args: str, check: bool = True, timeout: float = 300, input_bytes: bytes | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the docker CLI against this daemon; stdout/stderr as text."""
        done = subprocess.run(
            ["docker", "-H", self.host, *args],
            input=input_bytes.decode() if input_bytes is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise OfflineDaemonError(
                f"docker {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}"
            )
        return done

    def image_ids(self) -> set[str]:
        """Ids of every image this daemon holds (intermediate ones included)."""
        output = self.docker("image", "ls", "-a", "-q", "--no-trunc").stdout
        return {line.strip() for line in output.splitlines() if line.strip()}

    def image_id(self, ref: str) -> str | None:
        done = self.docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
        return done.stdout.strip() if done.returncode == 0 else None

    def config(self, ref: str) -> dict[str, object]:
        output = self.docker("image", "inspect", "--format", "{{json .Config}}", ref).stdout
        value: dict[str, object] = json.loads(output)
        return value

    def wipe(self) -> None:
        """Remove every container and image: an empty server again (in about a second)."""
        containers = self.docker("ps", "-a", "-q").stdout.split()
        if containers:
            self.docker("rm", "-f", *containers)
        images = sorted(self.image_ids())
        if images:
            self.docker("image", "rm", "-f", *images, check=False)
        left = self.image_ids()
        if left:
            raise OfflineDaemonError(f"could not empty the offline daemon: {sorted(left)}")

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop dockerd (SIGTERM, then SIGKILL), its containerd, unmount leftovers, delete all."""
        containerd_pid = _read_pid(self.exec_root / "containerd" / "containerd.pid")
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if containerd_pid is not None and _is_ours(containerd_pid, self.exec_root):
            with contextlib.suppress(ProcessLookupError):
                os.kill(containerd_pid, signal.SIGKILL)
        _unmount_below(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _is_ours(pid: int, marker: Path) -> bool:
    """True when process `pid` still runs and its command line names our directory."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return str(marker).encode() in cmdline


def _unmount_below(root: Path) -> None:
    """Unmount whatever a killed daemon left mounted under `root`, deepest first."""
    prefix = str(root) + "/"
    points = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines():
            point = line.split()[4].encode().decode("unicode_escape")  # "\040" -> " "
            if point.startswith(prefix):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False, timeout=30)


@contextlib.contextmanager
def offline_daemon(parent: Path | None = None) -> Iterator[OfflineDaemon]:
    """A started offline daemon, stopped and deleted when the block ends."""
    root = Path(tempfile.mkdtemp(prefix="bkd-", dir=str(parent) if parent else "/tmp"))
    daemon = OfflineDaemon(root=root)
    try:
        daemon.start()
        yield daemon
    finally:
        daemon.stop()
