"""Which images the testinfra suites run against, and one owned container per image.

Images come from --image REF or --variant ID; with neither, every matrix variant whose image
exists locally (the matrix is the only list). A variant's expectations are read from
matrix.toml, never restated here.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import testinfra
from support.ci import skip_or_fail
from support.dockercli import docker
from support.images import ImageUnderTest, images_under_test


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "image" not in metafunc.fixturenames:
        return
    params = []
    for item in images_under_test(metafunc.config):
        if isinstance(item, str):  # the `image` fixture skips, or fails in CI, with this reason
            params.append(pytest.param(item, id="no-image"))
        else:
            params.append(pytest.param(item, id=item.variant.id))
    metafunc.parametrize("image", params, scope="module", indirect=True)


@pytest.fixture(scope="module")
def image(request: pytest.FixtureRequest) -> ImageUnderTest:
    value: ImageUnderTest | str = request.param
    if isinstance(value, str):
        skip_or_fail(value)
    return value


@pytest.fixture(scope="module")
def host(image: ImageUnderTest) -> Iterator[testinfra.host.Host]:
    """A long-running container of the image, unique name, force-removed at the end."""
    name = f"bakery-test-{uuid.uuid4().hex[:10]}"
    docker("run", "-d", "--name", name, "--network", "none", image.ref, "sleep", "infinity")
    try:
        yield testinfra.get_host(f"docker://{name}")
    finally:
        docker("rm", "-f", name, check=False)
