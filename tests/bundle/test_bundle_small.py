"""save/load, delta, refusals and export/import with small synthetic images and an offline server."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support.bundles import (
    SmallImages,
    copy_bundle,
    docker_calls,
    docker_shim,
    flip_byte,
    run_loader,
    run_main,
    truncate,
)
from support.offline_daemon import OfflineDaemon

from bakery import bundle, engine
from bakery.errors import EXIT_BUNDLE

pytestmark = pytest.mark.docker


def manifest_of(directory: Path) -> dict[str, object]:
    value: dict[str, object] = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    return value


# ---------------------------------------------------------------------------------------------
# full bundle


def test_manifest_describes_images_layers_and_archive(
    small_bundle: Path, small_images: SmallImages
) -> None:
    saved = bundle.read_bundle(small_bundle).manifest
    info = engine.inspect_image(small_images.a)
    assert info is not None
    (image,) = saved.images
    assert (saved.kind, image.ref, image.tags, image.id) == (
        "full", small_images.a, (small_images.a,), small_images.a_id,
    )  # fmt: skip
    assert [layer.diff_id for layer in image.layers] == list(info.layers)
    assert [layer.chain_id for layer in image.layers] == list(bundle.chain_ids(info.layers))
    assert all(layer.included and layer.size > 0 for layer in image.layers)
    assert image.components == {"variant": "synthetic-small"}
    assert image.config.user == "1234:1234"
    assert image.config.workdir == "/workspace"
    (archive,) = saved.archives
    data = (small_bundle / archive.file).read_bytes()
    assert archive.sha256 == hashlib.sha256(data).hexdigest()
    assert archive.bytes == len(data) < archive.tar_bytes
    assert saved.bakery_version
    assert sorted(p.name for p in small_bundle.iterdir()) == [
        "images.tar.zst", "load.sh", "manifest.json",
    ]  # fmt: skip


def test_archive_carries_no_tags(small_bundle: Path) -> None:
    """Tags are applied by load after the ids were checked, never by docker load itself."""
    scan = subprocess.run(
        ["sh", "-c", f"zstd -dcq {small_bundle / 'images.tar.zst'} | tar -xOf - manifest.json"],
        capture_output=True,
        check=True,
    )
    entries = json.loads(scan.stdout)
    assert [entry["RepoTags"] for entry in entries] == [None]


def test_load_round_trip_keeps_id_config_and_runs_the_probe(
    small_bundle: Path,
    small_images: SmallImages,
    server: OfflineDaemon,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_main(["load", str(small_bundle), "--json"], server.host) == 0
    out, err = capsys.readouterr()
    assert server.image_id(small_images.a) == small_images.a_id
    assert server.config(small_images.a) == _local_config(small_images.a)
    result = json.loads(out)
    assert result["images"][0]["probe"] == {"verdict": "ok", "hint": "synthetic image, no torch"}
    assert "probe: ok — synthetic image, no torch" in err
    assert "verifying" in err
    assert "loading" in err
    run = server.docker("run", "--rm", "--network", "none", small_images.a)
    assert run.stdout.strip() == "hello world from /workspace as 1234"


def _local_config(ref: str) -> dict[str, object]:
    output = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{json .Config}}", ref],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    value: dict[str, object] = json.loads(output)
    return value


def test_load_sh_round_trip_without_bakery(
    small_bundle: Path, small_images: SmallImages, server: OfflineDaemon, tmp_path: Path
) -> None:
    env, log = docker_shim(tmp_path / "bin")
    done = run_loader(small_bundle, {**env, **server.env({})})
    assert done.returncode == 0, done.stderr
    assert server.image_id(small_images.a) == small_images.a_id
    assert f"loaded {small_images.a} ({small_images.a_id})" in done.stderr
    assert f"probe {small_images.a_id}: ok — synthetic image, no torch" in done.stderr
    calls = docker_calls(log)
    assert "load" in calls
    assert calls.index("load") < calls.index(f"tag {small_images.a_id} {small_images.a}")


def test_two_images_in_one_bundle_store_shared_layers_once(
    small_images: SmallImages,
    small_bundle: Path,
    server: OfflineDaemon,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "both"
    args = ["save", "--image", small_images.a, "--image", small_images.b, "-o", str(out), "--json"]
    assert run_main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    both = bundle.read_bundle(out).manifest
    assert printed == json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert [i.id for i in both.images] == [small_images.a_id, small_images.b_id]
    only_a = bundle.read_bundle(small_bundle).manifest.archives[0].tar_bytes
    extra = both.images[1].layers[-1].size  # B = A + one layer
    assert both.archives[0].tar_bytes < only_a + extra + 64 * 1024  # + configs and headers
    assert run_main(["load", str(out), "--no-probe"], server.host) == 0
    assert server.image_id(small_images.a) == small_images.a_id
    assert server.image_id(small_images.b) == small_images.b_id


# ---------------------------------------------------------------------------------------------
# delta


def test_delta_leaves_out_what_the_old_bundle_holds(small_bundle: Path, small_delta: Path) -> None:
    full = bundle.read_bundle(small_bundle).manifest
    delta = bundle.read_bundle(small_delta).manifest
    (image,) = delta.images
    assert delta.kind == "delta"
    assert [layer.included for layer in image.layers] == [False] * (len(image.layers) - 1) + [True]
    assert delta.since is not None
    assert (
        delta.since["manifest_sha256"]
        == hashlib.sha256((small_bundle / "manifest.json").read_bytes()).hexdigest()
    )
    assert delta.archives[0].bytes < full.archives[0].bytes / 100


def test_delta_loads_on_a_server_that_holds_the_old_bundle(
    small_bundle: Path, small_delta: Path, small_images: SmallImages, server: OfflineDaemon
) -> None:
    assert run_main(["load", str(small_bundle), "--no-probe"], server.host) == 0
    assert run_main(["load", str(small_delta), "--no-probe"], server.host) == 0
    assert server.image_id(small_images.b) == small_images.b_id
    run = server.docker("run", "--rm", "--network", "none", small_images.b, "cat", "code/train.py")
    assert run.stdout == "print('version 2')\n"


def test_load_sh_loads_the_delta_too(
    small_bundle: Path, small_delta: Path, small_images: SmallImages, server: OfflineDaemon
) -> None:
    env = server.env({})
    assert run_loader(small_bundle, env, "--no-probe").returncode == 0
    done = run_loader(small_delta, env, "--no-probe")
    assert done.returncode == 0, done.stderr
    assert server.image_id(small_images.b) == small_images.b_id


def _refuse_docker_load(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []

    def refuse(*args: object, **kwargs: object) -> engine.LoadOutcome:
        calls.append("load_images")
        raise AssertionError("docker load must not run")

    monkeypatch.setattr(engine, "load_images", refuse)
    return calls


def test_delta_without_its_base_is_refused_naming_the_missing_layers(
    small_delta: Path,
    small_images: SmallImages,
    server: OfflineDaemon,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = _refuse_docker_load(monkeypatch)
    assert run_main(["load", str(small_delta)], server.host) == EXIT_BUNDLE
    err = capsys.readouterr().err
    image = bundle.read_bundle(small_delta).manifest.images[0]
    missing = [layer for layer in image.layers if not layer.included]
    assert f"needs {len(missing)} base layer(s) this daemon does not have" in err
    for layer in missing:
        assert layer.chain_id in err
    assert small_images.a in err  # the bundle to load first
    assert calls == []
    assert server.image_ids() == set()


def test_load_sh_refuses_a_delta_without_its_base(
    small_delta: Path, server: OfflineDaemon, tmp_path: Path
) -> None:
    env, log = docker_shim(tmp_path / "bin")
    done = run_loader(small_delta, {**env, **server.env({})})
    assert done.returncode == 1
    assert "needs base layers this daemon does not have" in done.stderr
    image = bundle.read_bundle(small_delta).manifest.images[0]
    for layer in (layer for layer in image.layers if not layer.included):
        assert layer.chain_id in done.stderr
    assert "load" not in docker_calls(log)
    assert server.image_ids() == set()


# ---------------------------------------------------------------------------------------------
# damaged bundles: refused before Docker is touched


def _flip(directory: Path) -> None:
    archive = directory / "images.tar.zst"
    flip_byte(archive, archive.stat().st_size // 2)


def _truncate(directory: Path) -> None:
    truncate(directory / "images.tar.zst", 4096)


def _drop_manifest(directory: Path) -> None:
    (directory / "manifest.json").unlink()


def _swap_manifest(directory: Path, other: Path) -> None:
    (directory / "manifest.json").write_bytes((other / "manifest.json").read_bytes())


def _edit_manifest(directory: Path, edit: Callable[[dict[str, object]], None]) -> None:
    data = manifest_of(directory)
    edit(data)
    (directory / "manifest.json").write_text(json.dumps(data, indent=2), encoding="utf-8")


def _garble_manifest(directory: Path) -> None:
    (directory / "manifest.json").write_text("{", encoding="utf-8")


def _wrong_image_id(data: dict[str, object]) -> None:
    images = data["images"]
    assert isinstance(images, list)
    images[0]["id"] = "sha256:" + "0" * 64


def _wrong_diff_id(data: dict[str, object]) -> None:
    images = data["images"]
    assert isinstance(images, list)
    images[0]["layers"][1]["diff_id"] = "sha256:" + "1" * 64


DAMAGE: list[tuple[str, Callable[[Path, Path], None], str, str]] = [
    ("flipped-byte", lambda d, o: _flip(d), "is corrupt: its sha256 differs from manifest.json", "is corrupt: its sha256 differs"),
    ("truncated", lambda d, o: _truncate(d), "is truncated:", "is truncated:"),
    ("no-manifest", lambda d, o: _drop_manifest(d), "is not a complete bundle: manifest.json is missing", "is not a complete bundle"),
    ("manifest-of-another-bundle", _swap_manifest, "it is not the archive this manifest.json was written for", "manifest.json does not belong to images.tar.zst"),
    ("manifest-with-wrong-image-id", lambda d, o: _edit_manifest(d, _wrong_image_id), "does not match", ""),
    ("manifest-with-wrong-layer", lambda d, o: _edit_manifest(d, _wrong_diff_id), "does not follow from the diff ids", ""),
    ("manifest-not-json", lambda d, o: _garble_manifest(d), "not JSON", ""),
]  # fmt: skip


@pytest.mark.parametrize(
    ("damage", "expected"), [(d, e) for _, d, e, _ in DAMAGE], ids=[i for i, *_ in DAMAGE]
)
def test_damaged_bundle_is_refused_before_docker(
    damage: Callable[[Path, Path], None],
    expected: str,
    small_bundle: Path,
    small_delta: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = copy_bundle(small_bundle, tmp_path / "bundle")
    damage(broken, small_delta)
    touched: list[str] = []
    for name in (
        "load_images",
        "daemon_storage",
        "image_layer_lists",
        "inspect_image",
        "tag_image",
    ):
        monkeypatch.setattr(engine, name, lambda *a, _n=name, **k: touched.append(_n))
    assert run_main(["load", str(broken)]) == EXIT_BUNDLE
    err = capsys.readouterr().err
    assert expected in err
    assert str(broken) in err  # the message names the file
    assert "Traceback" not in err
    assert touched == []


@pytest.mark.parametrize(
    ("damage", "expected"),
    [(d, s) for _, d, _, s in DAMAGE if s],
    ids=[i for i, *_, s in DAMAGE if s],
)
def test_load_sh_refuses_a_damaged_bundle_before_docker(
    damage: Callable[[Path, Path], None],
    expected: str,
    small_bundle: Path,
    small_delta: Path,
    server: OfflineDaemon,
    tmp_path: Path,
) -> None:
    broken = copy_bundle(small_bundle, tmp_path / "bundle")
    damage(broken, small_delta)
    env, log = docker_shim(tmp_path / "bin")
    done = run_loader(broken, {**env, **server.env({})})
    assert done.returncode == 1
    assert expected in done.stderr
    assert docker_calls(log) == []  # not a single docker command ran
    assert server.image_ids() == set()


# ---------------------------------------------------------------------------------------------
# export / import


@pytest.fixture(scope="module")
def small_export(small_images: SmallImages, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("exports") / "export-a"
    assert run_main(["export", "--image", small_images.a, "-o", str(output)]) == 0
    return output


def test_import_restores_env_cmd_workdir_user_and_labels(
    small_export: Path, small_images: SmallImages, server: OfflineDaemon
) -> None:
    assert run_main(["import", str(small_export)], server.host) == 0
    imported = server.config(small_images.a)
    original = _local_config(small_images.a)
    for key in ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "Labels"):
        assert imported[key] == original[key], key
    layers = server.docker("image", "inspect", "--format", "{{len .RootFS.Layers}}", small_images.a)
    assert layers.stdout.strip() == "1"  # flattened
    run = server.docker("run", "--rm", "--network", "none", small_images.a)
    assert run.stdout.strip() == "hello world from /workspace as 1234"
    tricky = server.docker("run", "--rm", "--network", "none", small_images.a, "printenv", "TRICKY")
    assert tricky.stdout == 'say "hi" to $HOME, back\\slash\n'


def test_import_without_manifest_warns_and_loses_the_config(
    small_export: Path,
    server: OfflineDaemon,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (archive,) = small_export.glob("*.rootfs.tar.zst")
    bare = tmp_path / "bare.tar.zst"
    bare.write_bytes(archive.read_bytes())
    assert run_main(["import", str(bare)], server.host) == 2  # needs --tag
    assert "--tag" in capsys.readouterr().err
    assert run_main(["import", str(bare), "--tag", "bare/image:1"], server.host) == 0
    err = capsys.readouterr().err
    assert "has no bakery manifest.json" in err
    assert "not even PATH" in err
    config = server.config("bare/image:1")
    assert (config.get("Env"), config.get("Cmd"), config.get("User") or "") == (None, None, "")


def test_import_refuses_a_damaged_export_before_docker(
    small_export: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = copy_bundle(small_export, tmp_path / "export")
    (archive,) = broken.glob("*.rootfs.tar.zst")
    flip_byte(archive, archive.stat().st_size // 3)
    touched: list[str] = []
    monkeypatch.setattr(engine, "import_rootfs", lambda *a, **k: touched.append("import"))
    assert run_main(["import", str(broken)]) == EXIT_BUNDLE
    assert "is corrupt: its sha256 differs" in capsys.readouterr().err
    assert touched == []


def test_load_and_import_refuse_each_others_bundles(
    small_bundle: Path, small_export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_main(["load", str(small_export)]) == 2
    assert "use `python build.py import" in capsys.readouterr().err
    assert run_main(["import", str(small_bundle)]) == 2
    assert "use `python build.py load" in capsys.readouterr().err
