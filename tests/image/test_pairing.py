"""Version pairing suite: the image holds exactly the variant's torch stack, and it works."""

from __future__ import annotations

import json
import re
import shlex

import pytest
import testinfra
from support.images import ImageUnderTest

pytestmark = pytest.mark.docker


def python(host: testinfra.host.Host, code: str) -> str:
    result = host.run(f"timeout 300 python -c {shlex.quote(code)}")
    assert result.rc == 0, f"python -c {code!r} failed:\n{result.stderr[-3000:]}"
    return str(result.stdout).strip()


def accepted(image: ImageUnderTest, version: str) -> set[str]:
    """Accepted spellings: index wheels carry the local label; PyPI's same build may not."""
    local = image.variant.index.local
    spelled = f"{version}+{local}"
    if image.labels.get("io.bakery.torch-source") == "pypi":
        return {version, spelled}
    return {spelled}


def full_only(image: ImageUnderTest) -> None:
    if image.variant.flavour == "slim":
        pytest.skip("slim image: the torch stack is the host's (checked by the slim guards)")


def test_python_version(image: ImageUnderTest, host: testinfra.host.Host) -> None:
    assert python(host, "import sys; print('%d.%d' % sys.version_info[:2])") == image.variant.python


def test_torch_version_and_build(image: ImageUnderTest, host: testinfra.host.Host) -> None:
    full_only(image)
    assert python(host, "import torch; print(torch.__version__)") in accepted(
        image, image.variant.torch
    )


@pytest.mark.parametrize("name", ["torchvision", "torchaudio"])
def test_companion_matches_torch(
    image: ImageUnderTest, host: testinfra.host.Host, name: str
) -> None:
    full_only(image)
    installed = python(
        host,
        f"import importlib.metadata as m\ntry: print(m.version({name!r}))\nexcept m.PackageNotFoundError: print('')",
    )
    wanted = image.variant.companion(name)
    if not wanted and not installed:
        pytest.skip(f"{name} is neither in variant {image.variant.id} nor in the image")
    assert wanted, f"{name} {installed} is installed but the variant has none"
    assert installed in accepted(image, wanted)


def test_torchvision_ops_work(image: ImageUnderTest, host: testinfra.host.Host) -> None:
    """Fails with `operator torchvision::nms does not exist` on a mismatched pair."""
    full_only(image)
    has = python(host, "import importlib.util as u; print(bool(u.find_spec('torchvision')))")
    if has != "True":
        pytest.skip("no torchvision in this image")
    device = "'cuda' if torch.cuda.is_available() else 'cpu'"
    code = (
        "import torch, torchvision\n"
        f"d = {device}\n"
        "b = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]], device=d)\n"
        "s = torch.tensor([0.9, 0.8, 0.7], device=d)\n"
        "print(torchvision.ops.nms(b, s, 0.5).tolist())"
    )
    assert python(host, code) == "[0, 2]"


def test_pip_check_is_clean(image: ImageUnderTest, host: testinfra.host.Host) -> None:
    full_only(image)
    result = host.run("timeout 120 python -m pip check")
    assert result.rc == 0, result.stdout + result.stderr


def test_stack_pins_are_installed(image: ImageUnderTest, host: testinfra.host.Host) -> None:
    full_only(image)
    listed = json.loads(
        python(
            host,
            "import json, importlib.metadata as m; print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))",
        )
    )
    missing = {n: v for n, v in image.variant.stack if listed.get(n.lower()) != v}
    assert not missing, f"pinned but not installed as pinned: {missing}"


def test_labels_agree_with_contents(image: ImageUnderTest, host: testinfra.host.Host) -> None:
    labels = image.labels
    assert labels["io.bakery.variant"] == image.variant.id
    assert labels["io.bakery.python"] == image.variant.python
    assert labels["io.bakery.accelerator"] == image.variant.index.tag_part
    if image.variant.flavour == "full":
        torch = python(host, "import torch; print(torch.__version__)")
        assert re.sub(r"\+.*", "", torch) == labels["io.bakery.torch"]
