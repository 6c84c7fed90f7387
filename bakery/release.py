"""Release conventions registries and their users expect: which commit an image is, and tags
that never move.

- Immutable tags beside the moving ones: `<variant>-<short git sha>` on every publish, and
  `<variant>-<version>` when the commit is a `v*` tag (e.g. 2.13.0-cpu-py3.11-v1.4.0).
- OCI labels on every build: org.opencontainers.image.source, .url (the repository's https
  address, credentials stripped), .revision (the full sha), .created (the commit's time, so a
  rebuild of one commit yields the same image) and .licenses (pyproject's license).

The facts come from git in the project root; in CI without a checkout's .git, from GitHub's
GITHUB_* variables. Without either, there is no revision: no immutable tag and no
revision labels, and bakery says so.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

OCI = "org.opencontainers.image"
GIT_TIMEOUT = 30.0


@dataclass(frozen=True)
class Revision:
    sha: str
    version: str = ""  # the v* tag on this commit, if any
    created: str = ""  # the commit's time, RFC 3339 in UTC
    source: str = ""  # https address of the repository, no credentials

    @property
    def short(self) -> str:
        return self.sha[:7]


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def web_url(remote: str) -> str:
    """git@github.com:o/r.git or https://user:token@github.com/o/r.git -> https://github.com/o/r."""
    ssh = re.fullmatch(r"(?:ssh://)?[^@/]+@([^:/]+)[:/](.+)", remote)
    if ssh and not remote.startswith(("http://", "https://")):
        remote = f"https://{ssh.group(1)}/{ssh.group(2)}"
    remote = re.sub(r"^(https?://)[^/@]+@", r"\1", remote)  # never a token in a label
    return remote.removesuffix(".git") if remote.startswith(("http://", "https://")) else ""


def read_revision(root: Path, environ: Mapping[str, str] | None = None) -> Revision | None:
    """The commit the project root is at (git first, then GitHub's variables), or None."""
    env = os.environ if environ is None else environ
    sha = _git(root, "rev-parse", "HEAD")
    if sha:
        tags = _git(root, "tag", "--points-at", "HEAD").split()
        stamp = _git(root, "show", "-s", "--format=%ct", "HEAD")
        created = datetime.fromtimestamp(int(stamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        version = next((t for t in sorted(tags) if re.fullmatch(r"v\d[\w.+-]*", t)), "")
        return Revision(sha, version, created, web_url(_git(root, "remote", "get-url", "origin")))
    sha = env.get("GITHUB_SHA", "")
    if not re.fullmatch(r"[0-9a-f]{40}", sha):
        return None
    name = env.get("GITHUB_REF_NAME", "")
    version = name if env.get("GITHUB_REF_TYPE") == "tag" and name.startswith("v") else ""
    server, repo = env.get("GITHUB_SERVER_URL", ""), env.get("GITHUB_REPOSITORY", "")
    return Revision(sha, version, "", web_url(f"{server}/{repo}") if server and repo else "")


def immutable_tags(variant_tag: str, revision: Revision | None) -> tuple[str, ...]:
    if revision is None:
        return ()
    tags = [f"{variant_tag}-{revision.short}"]
    if revision.version:
        tags.append(f"{variant_tag}-{revision.version}")
    return tuple(tags)


def project_license(root: Path) -> str:
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return ""
    value = project.get("license", "")
    return str(value.get("text", "") if isinstance(value, Mapping) else value)


def oci_labels(root: Path, revision: Revision | None) -> dict[str, str]:
    labels = {f"{OCI}.licenses": project_license(root)}
    if revision is not None:
        labels |= {f"{OCI}.revision": revision.sha, f"{OCI}.created": revision.created}
        labels |= {f"{OCI}.source": revision.source, f"{OCI}.url": revision.source}
    return {key: value for key, value in labels.items() if value}
