"""A stand-in for the PyTorch ROCm wheel index (and for PyPI), served on loopback for tests.

The real `+rocm6.3` wheels exist only on download.pytorch.org, which is unreachable here. These
helpers build tiny pure-Python **stand-in** wheels at test time (no binary is committed) and serve
them as PEP 503 simple indexes from a `http.server` thread on 127.0.0.1:

  /whl/rocm6.3/<project>/   stand-in for https://download.pytorch.org/whl/rocm6.3
  /simple/<project>/        stand-in for PyPI (the application stack's index)

The stand-in torch is not PyTorch: it only carries what bakery's guard and probe read
(`torch.__version__`, `torch.version.hip/cuda`, `torch.cuda.*`). Every request is recorded, so a
test can tell which index a wheel was downloaded from.
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.server
import re
import threading
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROCM_INDEX = "whl/rocm6.3"  # path of the accelerator index stand-in (as on download.pytorch.org)
PYPI_INDEX = "simple"  # path of the PyPI stand-in
WHEEL_TAG = "py3-none-any"

STANDIN_NOTE = "Stand-in for tests (bakery tests/builds): NOT the real package."


@dataclass(frozen=True)
class StandinDist:
    """One stand-in distribution: its name, version, dependencies and files (path -> text)."""

    name: str
    version: str
    files: Mapping[str, str]
    requires: tuple[str, ...] = ()
    summary: str = STANDIN_NOTE

    @property
    def escaped(self) -> str:
        """The name as wheel filenames and .dist-info folders spell it (PEP 427 / PEP 503)."""
        return re.sub(r"[-_.]+", "_", self.name).lower()

    @property
    def filename(self) -> str:
        return f"{self.escaped}-{self.version}-{WHEEL_TAG}.whl"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def build_wheel(dist: StandinDist, out_dir: Path) -> Path:
    """Write `dist` as a valid pure-Python wheel into `out_dir` with the stdlib zipfile."""
    Version(dist.version)  # a stand-in must still carry a valid PEP 440 version
    info = f"{dist.escaped}-{dist.version}.dist-info"
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {dist.name}",
        f"Version: {dist.version}",
        f"Summary: {dist.summary}",
        *(f"Requires-Dist: {req}" for req in dist.requires),
    ]
    wheel = [
        "Wheel-Version: 1.0",
        "Generator: bakery-tests-standin",
        "Root-Is-Purelib: true",
        f"Tag: {WHEEL_TAG}",
    ]
    entries: dict[str, bytes] = {path: text.encode() for path, text in dist.files.items()}
    entries[f"{info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    entries[f"{info}/WHEEL"] = ("\n".join(wheel) + "\n").encode()
    record = [f"{path},{_record_hash(data)},{len(data)}" for path, data in entries.items()]
    entries[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / dist.filename
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, data in entries.items():
            archive.writestr(zipfile.ZipInfo(path, date_time=(2025, 11, 12, 0, 0, 0)), data)
    name, version, _, _ = parse_wheel_filename(target.name)  # the grammar pip applies
    if name != canonicalize_name(dist.name) or version != Version(dist.version):
        raise ValueError(f"stand-in wheel {target.name} does not parse back to {dist.name}")
    return target


# --- the stand-in distributions --------------------------------------------------------------

TORCH_VERSION = "2.9.1"
ROCM_LOCAL = "rocm6.3"
HIP_VERSION = "6.3.42131-fa1d09cbd"
GFX_ARCHS = ("gfx90a", "gfx942")


def _torch_version_py(version: str, hip: str | None, cuda: str | None, who: str) -> str:
    return (
        f'"""{who}: torch.version as the guard reads it. {STANDIN_NOTE}"""\n\n'
        f"__version__ = {version!r}\n"
        f"hip = {hip!r}\n"
        f"cuda = {cuda!r}\n"
        "git_version = 'stand-in'\n"
    )


TORCH_INIT = f'''"""Stand-in torch (what bakery-probe reads, nothing more). {STANDIN_NOTE}

__version__ comes from torch/version.py, as in PyTorch, so a package that overwrites that file
changes both torch.__version__ and torch.version.hip/cuda.
"""

from torch import cuda, version
from torch.version import __version__

__all__ = ["__version__", "cuda", "version"]
'''

TORCH_CUDA = f'''"""Stand-in torch.cuda: a ROCm build on a machine without a GPU. {STANDIN_NOTE}"""


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0


def get_arch_list() -> list[str]:
    return {list(GFX_ARCHS)!r}
'''

TORCHVISION_INIT = f'''"""Stand-in torchvision: imports next to torch, version from its metadata. {STANDIN_NOTE}"""

import importlib.metadata

import torch  # noqa: F401 - like torchvision, needs torch importable

__version__ = importlib.metadata.version("torchvision")
'''


def rocm_torch() -> StandinDist:
    """torch 2.9.1+rocm6.3: stand-in for the wheel only download.pytorch.org/whl/rocm6.3 has."""
    version = f"{TORCH_VERSION}+{ROCM_LOCAL}"
    return StandinDist(
        name="torch",
        version=version,
        files={
            "torch/__init__.py": TORCH_INIT,
            "torch/version.py": _torch_version_py(version, HIP_VERSION, None, "ROCm stand-in"),
            "torch/cuda/__init__.py": TORCH_CUDA,
        },
    )


def rocm_torchvision() -> StandinDist:
    """torchvision 0.24.1+rocm6.3 (stand-in), pinning torch==2.9.1 like the real one."""
    return StandinDist(
        name="torchvision",
        version=f"0.24.1+{ROCM_LOCAL}",
        files={"torchvision/__init__.py": TORCHVISION_INIT},
        requires=(f"torch=={TORCH_VERSION}",),
    )


def pypi_torch() -> StandinDist:
    """torch 2.9.1 as PyPI serves it (a CUDA 12.8 build): stand-in bait on the PyPI stand-in."""
    return StandinDist(
        name="torch",
        version=TORCH_VERSION,
        files={
            "torch/__init__.py": TORCH_INIT,
            "torch/version.py": _torch_version_py(
                f"{TORCH_VERSION}+cu128", None, "12.8", "PyPI CUDA stand-in"
            ),
            "torch/cuda/__init__.py": TORCH_CUDA.replace(repr(list(GFX_ARCHS)), "['sm_80']"),
        },
    )


def needs_torch() -> StandinDist:
    """standin-needs-torch 1.0: a later stack package that depends on torch (stand-in)."""
    return StandinDist(
        name="standin-needs-torch",
        version="1.0",
        files={"standin_needs_torch/__init__.py": f'"""{STANDIN_NOTE}"""\n\nimport torch\n'},
        requires=("torch>=2.0",),
    )


def clobber() -> StandinDist:
    """standin-clobber 1.0: depends on torch AND ships torch/version.py of a CUDA build.

    Installing it after the ROCm stand-in torch silently turns that torch into 2.9.1+cu128, the
    way a stack package can drag a differently-suffixed torch in (stand-in).
    """
    return StandinDist(
        name="standin-clobber",
        version="1.0",
        files={
            "standin_clobber/__init__.py": f'"""{STANDIN_NOTE}"""\n',
            "torch/version.py": _torch_version_py(
                f"{TORCH_VERSION}+cu128", None, "12.8", "clobbering stand-in"
            ),
        },
        requires=("torch>=2.0",),
    )


# --- the server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # decoded, without query
    status: int


@dataclass
class StandinIndex:
    """PEP 503 simple indexes on 127.0.0.1 (a free port), with an access log."""

    wheel_dir: Path
    indexes: Mapping[str, Sequence[Path]]  # index path (e.g. "simple") -> wheel files
    log: list[Request] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the stand-in index is not running")
        return int(self._server.server_address[1])

    def url(self, index: str) -> str:
        return f"http://127.0.0.1:{self.port}/{index}"

    # -- content --
    def _projects(self, index: str) -> dict[str, list[Path]]:
        projects: dict[str, list[Path]] = {}
        for wheel in self.indexes[index]:
            name = str(parse_wheel_filename(wheel.name)[0])
            projects.setdefault(name, []).append(wheel)
        return projects

    def page(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for a GET of `path`."""
        parts = [p for p in path.split("/") if p]
        for index in self.indexes:
            prefix = index.split("/")
            if parts[: len(prefix)] != prefix:
                continue
            rest = parts[len(prefix) :]
            projects = self._projects(index)
            if not rest:
                links = [f'<a href="{quote(p)}/">{html.escape(p)}</a>' for p in sorted(projects)]
                return 200, "text/html", _html(links)
            project = str(canonicalize_name(rest[0]))
            if project not in projects or rest[0] != project:
                return 404, "text/plain", b"no such project on this stand-in index\n"
            files = {w.name: w for w in projects[project]}
            if len(rest) == 1:
                links = [
                    f'<a href="/{index}/{project}/{quote(name)}#sha256={_sha256(w)}">'
                    f"{html.escape(name)}</a>"
                    for name, w in sorted(files.items())
                ]
                return 200, "text/html", _html(links)
            if len(rest) == 2 and rest[1] in files:
                return 200, "application/octet-stream", files[rest[1]].read_bytes()
        return 404, "text/plain", b"not found on the stand-in index\n"

    # -- log --
    def record(self, request: Request) -> None:
        with self._lock:
            self.log.append(request)

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self.log)

    def wheel_downloads(self) -> list[tuple[str, str]]:
        """(index, wheel filename) of every wheel served, in order."""
        found = []
        for r in self.requests():
            if r.method != "GET" or r.status != 200 or not r.path.endswith(".whl"):
                continue
            parts = r.path.strip("/").split("/")  # <index...>/<project>/<file>
            found.append(("/".join(parts[:-2]), parts[-1]))
        return found

    def asked_for(self, index: str, project: str) -> list[Request]:
        """Requests for `project`'s page or files on `index`."""
        prefix = f"/{index}/{canonicalize_name(project)}/"
        return [r for r in self.requests() if r.path.startswith(prefix)]

    # -- lifetime --
    def start(self) -> StandinIndex:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 30  # a stuck client cannot hold a handler thread forever
            server_version = "bakery-standin-index/1"

            def _serve(self, body_too: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                status, ctype, body = owner.page(path)
                owner.record(Request(self.command, path, status))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")  # keep pip's shared cache clean
                self.end_headers()
                if body_too:
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._serve(body_too=True)

            def do_HEAD(self) -> None:
                self._serve(body_too=False)

            def log_message(self, format: str, *args: object) -> None:
                return  # the access log is owner.log; keep pytest's output clean

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="standin-index",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _html(links: Iterable[str]) -> bytes:
    body = "<br/>\n".join(links)
    return (
        "<!DOCTYPE html>\n<html><head><title>bakery stand-in index</title></head><body>\n"
        f"{body}\n</body></html>\n"
    ).encode()


def make_standin_index(wheel_dir: Path) -> StandinIndex:
    """Build every stand-in wheel into `wheel_dir`; the index is not started yet."""
    rocm = [build_wheel(d, wheel_dir / "rocm6.3") for d in (rocm_torch(), rocm_torchvision())]
    pypi = [build_wheel(d, wheel_dir / "pypi") for d in (pypi_torch(), needs_torch(), clobber())]
    return StandinIndex(wheel_dir=wheel_dir, indexes={ROCM_INDEX: rocm, PYPI_INDEX: pypi})
