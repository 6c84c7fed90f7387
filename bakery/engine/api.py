"""Read-only questions to the local Docker daemon over its unix socket, with the standard library.

For `enter`'s fast path (issue 17): a `docker container inspect` costs a Go process start; one
HTTP GET on /var/run/docker.sock costs about a millisecond and needs no client library. Only the
plain local setup is served: DOCKER_HOST unset or `unix://…`, no DOCKER_CONTEXT and no current
context in the docker CLI's config. Everything else (a remote host, TLS, a context, any error or
unexpected answer) returns None, and the caller takes the full path, which reports problems.
This module imports nothing but the standard library, and nothing from bakery.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_SOCKET = "/var/run/docker.sock"
API_VERSION = "v1.41"  # Docker 20.10 and later answer it; the fields read here are older still
TIMEOUT_SECONDS = 5.0
MAX_ANSWER_BYTES = 16 * 1024 * 1024
# Characters of container names and image references; anything else is not sent (no quoting).
SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/:@")


def local_socket(env: Mapping[str, str] = os.environ) -> str | None:
    """The daemon's socket path when the docker CLI would use a plain local socket, else None."""
    if env.get("DOCKER_CONTEXT") or _has_current_context(env):
        return None
    host = env.get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://") and len(host) > len("unix://"):
        return host[len("unix://") :]
    return None


def get_json(path: str, env: Mapping[str, str] = os.environ) -> Any:
    """GET `path` (e.g. /containers/NAME/json) from the local daemon; the decoded JSON.

    None for 404, for a daemon this module does not serve (see the module's docstring), and for
    any failure: callers then take the path that reports errors properly.
    """
    where = local_socket(env)
    if where is None:
        return None
    try:
        answer = _exchange(where, f"GET /{API_VERSION}{path} HTTP/1.0\r\nHost: docker\r\n\r\n")
    except (OSError, UnicodeEncodeError):
        return None
    return _body(answer)


def post(path: str, env: Mapping[str, str] = os.environ) -> bool:
    """POST `path` (no body) to the local daemon; True when it answered 200 or 201.

    False for everything else, with nothing to tell: the caller then runs the docker command,
    which does the same and reports any error in full.
    """
    where = local_socket(env)
    if where is None:
        return False
    request = f"POST /{API_VERSION}{path} HTTP/1.0\r\nHost: docker\r\nContent-Length: 0\r\n\r\n"
    try:
        answer = _exchange(where, request)
    except (OSError, UnicodeEncodeError):
        return False
    status = answer.split(b"\r\n", 1)[0].split(b" ")
    return len(status) > 1 and status[1] in (b"200", b"201")


def container(name: str, env: Mapping[str, str] = os.environ) -> Any:
    """The daemon's inspect document of container `name` (None: missing or not answerable)."""
    return get_json(f"/containers/{name}/json", env) if _safe(name) else None


def image(ref: str, env: Mapping[str, str] = os.environ) -> Any:
    """The daemon's inspect document of image `ref` (None: missing or not answerable)."""
    return get_json(f"/images/{ref}/json", env) if _safe(ref) else None


def exec_args(
    name: str,
    command: Sequence[str],
    *,
    tty: bool,
    workdir: str | None = None,
    env: Mapping[str, str] | None = None,
    env_from_caller: Sequence[str] = (),
) -> list[str]:
    """`exec -i [-t] …` after the docker binary: what both enter paths run."""
    argv = ["exec", "--interactive", *(["--tty"] if tty else [])]
    argv += ["--workdir", workdir] if workdir else []
    for key, value in (env or {}).items():
        argv += ["--env", f"{key}={value}"]
    for key in env_from_caller:
        argv += ["--env", key]
    return [*argv, name, *command]


def docker_binary(env: Mapping[str, str]) -> str | None:
    """The docker CLI's path as `shutil.which` finds it (shutil is not imported for this)."""
    for folder in env.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(folder or ".", "docker")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _safe(text: str) -> bool:
    """A name or reference to put in a URL path as it is: its characters, and no `..` part."""
    parts = text.split("/")
    return bool(text) and set(text) <= SAFE and all(p not in ("", ".", "..") for p in parts)


def _exchange(where: str, request: str) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT_SECONDS)
        sock.connect(where)
        sock.sendall(request.encode("ascii"))
        return _read_all(sock)


def _read_all(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := sock.recv(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise OSError("answer too large")
    return b"".join(chunks)


def _body(answer: bytes) -> Any:
    """The JSON body of a 200 answer with a plain (not chunked) body, else None."""
    head, sep, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ")
    if not sep or len(status) < 2 or status[1] != b"200":
        return None
    if any(line.lower().startswith(b"transfer-encoding:") for line in lines[1:]):
        return None  # HTTP/1.0 asks for a plain body; anything else is not ours to decode
    try:
        return json.loads(body)
    except ValueError:
        return None


def _has_current_context(env: Mapping[str, str]) -> bool:
    """True when the docker CLI's config names a current context (then it may not be local)."""
    folder = env.get("DOCKER_CONFIG") or os.path.join(env.get("HOME", "/"), ".docker")
    try:
        with open(os.path.join(folder, "config.json"), "rb") as config:
            data = json.loads(config.read())
    except (OSError, ValueError):
        return False
    current = data.get("currentContext") if isinstance(data, dict) else None
    return bool(current) and current != "default"
