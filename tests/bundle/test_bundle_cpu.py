"""The real cpu image on an offline server: round trip + probe, a stylelora change as a delta,
and export → import with the training smoke.

These need the built image (`python build.py --variant 2.13.0-cpu-py3.11 --bootstrap-base`);
without it they skip here and fail in CI, which builds it first. The image is pinned by id
under a private tag for the module, so a rebuild of the real tag meanwhile changes nothing.

The "changed" image is the cpu image plus a new layer that replaces one stylelora file, the
shape a training-code change has in the real flow (the code is the last layer). Rebuilding
the variant with bakery's builder would give the same shape but costs minutes here: BuildKit
re-syncs the host's local pip indexes (7 GB of named contexts) before it can reuse its cache.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.bundles import ROOT, build_image, run_main
from support.ci import skip_or_fail
from support.offline_daemon import OfflineDaemon, offline_daemon

from bakery import bundle, engine
from bakery.errors import EXIT_BUNDLE
from bakery.matrix import Selection, Variant, load_matrix, select_variants

pytestmark = pytest.mark.docker

VARIANT = "2.13.0-cpu-py3.11"
MEASURED: dict[str, str] = {}  # printed at the end of the module (-s or the terminal summary)


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str
    seconds: float


def run_captured(args: list[str], host: str | None = None) -> Ran:
    """run_main with stdout/stderr captured (usable from module-scoped fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_main(args, host)
    return Ran(code, out.getvalue(), err.getvalue(), time.monotonic() - started)


def cpu_variant(root: Path = ROOT) -> Variant:
    (variant,) = select_variants(load_matrix(root / "matrix.toml"), Selection(variants=(VARIANT,)))
    return variant


@dataclass(frozen=True)
class Pinned:
    ref: str  # a private tag on the id below
    id: str


@pytest.fixture(scope="module")
def cpu_image() -> Iterator[Pinned]:
    ref = cpu_variant().image
    info = engine.inspect_image(ref)
    if info is None:
        skip_or_fail(f"{ref} is not built (python build.py --variant {VARIANT} --bootstrap-base)")
    pinned = f"bakery-bundle-test/cpu:{uuid.uuid4().hex[:10]}"
    engine.tag_image(info.id, pinned)
    try:
        yield Pinned(pinned, info.id)
    finally:
        engine.remove_image(pinned)


@pytest.fixture(scope="module")
def cpu_bundle(cpu_image: Pinned, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("cpu") / "full"
    ran = run_captured(["save", "--image", cpu_image.ref, "-o", str(output)])
    assert ran.code == 0, ran.stderr[-3000:]
    MEASURED["full save"] = f"{ran.seconds:.0f}s"
    return output


@pytest.fixture(scope="module")
def cpu_server(cpu_bundle: Path) -> Iterator[tuple[OfflineDaemon, Ran]]:
    """A dedicated offline server on which the cpu bundle was loaded (with the probe)."""
    with offline_daemon() as server:
        ran = run_captured(["load", str(cpu_bundle), "--json"], server.host)
        MEASURED["full load (verify, load, probe)"] = f"{ran.seconds:.0f}s"
        yield server, ran


def test_full_bundle_of_the_cpu_image(cpu_bundle: Path, cpu_image: Pinned) -> None:
    manifest = bundle.read_bundle(cpu_bundle).manifest
    (image,) = manifest.images
    info = engine.inspect_image(cpu_image.id)
    assert info is not None
    assert image.id == cpu_image.id
    assert image.components["variant"] == VARIANT
    assert image.components["torch"] == "2.13.0"
    assert image.components["python"] == "3.11"
    (archive,) = manifest.archives
    MEASURED["cpu image"] = f"{info.size / 1e9:.2f} GB, {len(info.layers)} layers"
    MEASURED["full bundle"] = (
        f"{archive.bytes / 1e6:.0f} MB zstd ({archive.tar_bytes / 1e6:.0f} MB tar, "
        f"ratio {archive.tar_bytes / archive.bytes:.2f})"
    )
    assert archive.bytes < archive.tar_bytes


def test_cpu_round_trip_then_the_probe_runs_on_the_server(
    cpu_server: tuple[OfflineDaemon, Ran], cpu_image: Pinned
) -> None:
    server, ran = cpu_server
    assert ran.code == 0, ran.stderr[-3000:]
    assert server.image_id(cpu_image.ref) == cpu_image.id
    (loaded,) = json.loads(ran.stdout)["images"]
    assert loaded["probe"]["verdict"] == "ok", loaded["probe"]
    assert f"probe: ok — {loaded['probe']['hint']}" in ran.stderr


# ---------------------------------------------------------------------------------------------
# a stylelora change, shipped as a delta


@dataclass(frozen=True)
class Changed:
    ref: str
    id: str
    file: str  # the stylelora file that changed


CHANGED_DOCKERFILE = """\
FROM {parent}
COPY smoke.py /opt/bakery/src/stylelora/smoke.py
"""


@pytest.fixture(scope="module")
def changed_image(cpu_image: Pinned, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Changed]:
    """The cpu image with one stylelora file changed, as a new last layer."""
    context = tmp_path_factory.mktemp("change")
    source = (ROOT / "stylelora" / "smoke.py").read_text(encoding="utf-8")
    (context / "smoke.py").write_text(f"{source}# bundle test change {uuid.uuid4().hex}\n")
    ref = f"bakery-bundle-test/changed:{uuid.uuid4().hex[:10]}"
    started = time.monotonic()
    image_id = build_image(context, CHANGED_DOCKERFILE.format(parent=cpu_image.ref), ref)
    MEASURED["build of the changed image"] = f"{time.monotonic() - started:.0f}s"
    try:
        yield Changed(ref, image_id, "/opt/bakery/src/stylelora/smoke.py")
    finally:
        engine.remove_image(ref)


@pytest.fixture(scope="module")
def cpu_delta(
    changed_image: Changed, cpu_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    output = tmp_path_factory.mktemp("cpu") / "delta"
    args = ["save", "--image", changed_image.ref, "-o", str(output), "--since", str(cpu_bundle)]
    ran = run_captured(args)
    assert ran.code == 0, ran.stderr[-3000:]
    MEASURED["delta save"] = f"{ran.seconds:.0f}s"
    return output


def test_stylelora_change_ships_as_a_delta_under_one_percent(
    cpu_bundle: Path, cpu_delta: Path, changed_image: Changed
) -> None:
    full = bundle.read_bundle(cpu_bundle).manifest.archives[0].bytes
    delta = bundle.read_bundle(cpu_delta).manifest
    (image,) = delta.images
    assert image.id == changed_image.id
    assert [layer.included for layer in image.layers][-1] is True
    assert not any(layer.included for layer in image.layers[:-1])
    size = delta.archives[0].bytes
    MEASURED["delta bundle"] = f"{size / 1e3:.0f} kB = {100 * size / full:.3f}% of the full bundle"
    assert size < full / 100


def test_delta_loads_on_the_server_holding_the_previous_bundle(
    cpu_server: tuple[OfflineDaemon, Ran], cpu_delta: Path, changed_image: Changed
) -> None:
    server, full_load = cpu_server
    assert full_load.code == 0
    ran = run_captured(["load", str(cpu_delta), "--no-probe"], server.host)
    assert ran.code == 0, ran.stderr[-3000:]
    MEASURED["delta load"] = f"{ran.seconds:.0f}s"
    assert server.image_id(changed_image.ref) == changed_image.id
    changed = server.docker(
        "run", "--rm", "--network", "none", changed_image.ref, "tail", "-n", "1", changed_image.file
    )
    assert changed.stdout.startswith("# bundle test change ")


def test_delta_on_a_server_without_the_base_names_the_missing_layers(cpu_delta: Path) -> None:
    manifest = bundle.read_bundle(cpu_delta).manifest
    missing = [layer for layer in manifest.images[0].layers if not layer.included]
    with offline_daemon() as empty:
        ran = run_captured(["load", str(cpu_delta)], empty.host)
        assert empty.image_ids() == set()
    assert ran.code == EXIT_BUNDLE
    assert f"needs {len(missing)} base layer(s) this daemon does not have" in ran.stderr
    for layer in missing:
        assert layer.chain_id in ran.stderr


# ---------------------------------------------------------------------------------------------
# export → import: one flattened layer, the config restored, the training smoke runs


def test_export_import_keeps_the_config_and_the_smoke_trains(
    cpu_image: Pinned, cpu_server: tuple[OfflineDaemon, Ran], tmp_path: Path
) -> None:
    server, _ = cpu_server
    exported = tmp_path / "export"
    ran = run_captured(["export", "--image", cpu_image.ref, "-o", str(exported)])
    assert ran.code == 0, ran.stderr[-3000:]
    MEASURED["export"] = f"{ran.seconds:.0f}s"
    tag = f"bakery-bundle-test/imported:{uuid.uuid4().hex[:8]}"
    ran = run_captured(["import", str(exported), "--tag", tag], server.host)
    assert ran.code == 0, ran.stderr[-3000:]
    MEASURED["import"] = f"{ran.seconds:.0f}s"
    imported, original = server.config(tag), server.config(cpu_image.id)
    for key in ("Env", "Entrypoint", "Cmd", "WorkingDir", "User", "Labels"):
        assert imported.get(key) == original.get(key), key
    env = imported["Env"]
    assert isinstance(env, list)
    assert any(str(e).startswith("PATH=/opt/venv/bin:") for e in env)
    started = time.monotonic()
    smoke = server.docker(
        "run", "--rm", "--network", "none", tag, "python", "-m", "stylelora", "smoke",
        timeout=900, check=False,
    )  # fmt: skip
    MEASURED["smoke in the imported image"] = f"{time.monotonic() - started:.0f}s"
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    verdict = json.loads(smoke.stdout.strip().splitlines()[-1])
    assert verdict["ok"] is True, verdict


@pytest.fixture(scope="module", autouse=True)
def report_measurements() -> Iterator[None]:
    yield
    if MEASURED:
        width = max(len(k) for k in MEASURED)
        lines = "\n".join(f"  {k:<{width}}  {v}" for k, v in MEASURED.items())
        print(f"\nbundle measurements (cpu image):\n{lines}")
