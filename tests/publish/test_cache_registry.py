"""A registry cache behind a password: bakery logs in like for a push, imports, logs out.

The cache reference lives in a real `docker-registry` with htpasswd auth. The registry's own
access log proves the cache manifest was read as the authenticated user.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.registry import CPU_SLIM, USER, Registry, SmallImages

from bakery import cli, engine

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
BASE_MAP = "docker.io/library/debian:bookworm-slim=bakery/debian:bookworm"


@pytest.fixture
def repository() -> Iterator[str]:
    name = f"scaleout-cachecred-{uuid.uuid4().hex[:8]}"
    yield name
    engine.remove_image(f"{name}:{CPU_SLIM}")


def test_registry_cache_logs_in_with_env_credentials_and_logs_out(
    registry: Registry, env_credentials: str, small_images: SmallImages, repository: str,
    capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    cache = f"{registry.host}/lab/cache:{CPU_SLIM}"
    engine.login_registry(registry.host, USER, env_credentials)
    engine.tag_image(f"{small_images.repository}:{CPU_SLIM}", cache)
    engine.push_image(cache)
    engine.remove_image(cache, force=False)
    engine.logout_registry(registry.host)
    offset = len(registry.log_path.read_text(errors="replace"))

    code = cli.main(["--matrix", str(ROOT / "matrix.toml"), "--variant", CPU_SLIM,
                     "--base-map", BASE_MAP, "--no-host-pip", "--repository", repository,
                     "--cache-from", f"type=registry,ref={cache}"])  # fmt: skip

    out, err = capfd.readouterr()
    assert code == 0, err[-3000:]
    assert f"logged in to cache registry {registry.host} as {USER}" in err
    assert env_credentials not in out + err
    stored = json.loads((Path(os.environ["DOCKER_CONFIG"]) / "config.json").read_text())
    assert registry.host not in stored.get("auths", {}), "logged out after the build"
    reads = [
        line
        for line in registry.log_path.read_text(errors="replace")[offset:].splitlines()
        if "/v2/lab/cache/manifests/" in line and "response completed" in line
    ]
    # BuildKit read the cache manifest with success: this registry answers 401 to anyone who
    # is not logged in (Registry.answers checks that), so the build used bakery's login
    assert any("useragent=buildkit" in line and "http.response.status=200" in line
               for line in reads), "\n".join(reads)  # fmt: skip
