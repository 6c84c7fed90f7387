"""The end of the publish chain: a daemon that has never seen the image pulls it from the
registry bakery pushed it to, and the image's own probe runs there.

That daemon is the offline one from tests/bundle (own data root, own empty network namespace);
the only thing it can reach is the registry, through a loopback bridge into its namespace.

The image is the real cpu variant (the probe needs Python and torch, which the small test images
do not have). A developer machine without it skips with the command that builds it; CI builds
it first, so there a missing image fails.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.ci import require_image
from support.offline_daemon import offline_daemon
from support.registry import (
    CPU_FULL,
    REAL_CPU_IMAGE,
    USER,
    Registry,
    mark_tested,
    reachable_from,
    write_project,
)

from bakery import cli, engine
from bakery.errors import EXIT_OK

pytestmark = pytest.mark.docker


@pytest.fixture
def real_cpu_project(tmp_path: Path, docker_config: Path) -> Iterator[Path]:
    """A project whose local repository holds the real cpu image under its variant tag."""
    require_image(REAL_CPU_IMAGE, f"python build.py --variant {CPU_FULL}")
    info = engine.inspect_image(REAL_CPU_IMAGE)
    assert info is not None
    repository = f"bakery-publish-{uuid.uuid4().hex[:10]}/bakery"
    matrix = write_project(tmp_path / "project", repository)
    engine.tag_image(info.id, f"{repository}:{CPU_FULL}")
    try:
        yield matrix
    finally:
        engine.remove_image(f"{repository}:{CPU_FULL}", force=False)


def test_an_empty_daemon_pulls_the_pushed_image_and_its_probe_runs_there(
    real_cpu_project: Path, registry: Registry, env_credentials: str
) -> None:
    mark_tested(real_cpu_project, [CPU_FULL])
    code = cli.main([
        "push", "--matrix", str(real_cpu_project), "--variant", CPU_FULL,
        "--registry", f"{registry.host}/lab", "--retry-delay", "0.1",
    ])  # fmt: skip
    assert code == EXIT_OK
    ref = f"{registry.host}/lab/bakery:{CPU_FULL}"
    local = engine.inspect_image(REAL_CPU_IMAGE)
    assert local is not None

    with offline_daemon() as server, reachable_from(server, registry):
        assert server.image_ids() == set()  # it has never seen any image
        with engine.connected(server.host):
            # push logged out again (its credential does not outlive the command): the server
            # logs in as a user of that registry would
            engine.login_registry(registry.host, USER, env_credentials)
            pulled_id = engine.pull_image(ref)
            engine.logout_registry(registry.host)
            probe = engine.run_container(
                ref, ["bakery-probe", "--expect", "cpu"], network="none", timeout=180
            )

    assert pulled_id == local.id  # the same image config, so the same image
    assert probe.return_code == 0, probe.stderr
    report = json.loads(probe.stdout)
    assert report["verdict"] in ("ok", "no-gpu"), report["hint"]
    assert report["torch"]["version"].split("+")[0] == "2.13.0"
    assert report["expected"] == {"accelerator": "cpu"}
