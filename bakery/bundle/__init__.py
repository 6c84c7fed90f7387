"""Offline bundles: save/load with verification, delta bundles, export/import with the config restored.

A bundle is one directory a user carries to an air-gapped server:

    images.tar.zst   `docker save` of every selected image (shared layers stored once), zstd;
                     a delta (`save --since OLD`) leaves out the layers the server already has
    load.sh          loads the bundle where bakery is not installed (docker, zstd, coreutils)
    manifest.json    images, tags, ids, layer chains, versions, sizes, the archive's sha256

The manifest is written last and is what makes a directory a bundle. Every file is written under
a temporary name, fsynced and renamed (bakery.atomicfile). `-o` must be new, empty or a bundle
bakery wrote (nothing else is ever deleted or replaced); an old bundle there stays whole until
the new archive is complete, then its manifest goes first. A save killed at any point leaves the
old bundle whole, or no manifest: never a half-new bundle that looks complete.

`load` verifies everything it can without Docker first (manifest, size, sha256, and that the
archive holds exactly the images and layers the manifest names: no other member, no link or
device, no path outside the archive, every blob's content equal to its digest, the tar's size
equal to tar_bytes), then the daemon (image store,
free space, for a delta the base layers), then streams the archive through `zstd -d` into
`docker load`, checks the image ids, applies the tags and runs the probe.

Why a delta can leave layers out: `docker load` on the classic image store opens a layer file
only when the daemon lacks that layer's ChainID (moby image/tarexport/load.go,
shared/facts/docker-tools.md §3). The archive's own tags are removed at save time, so
nothing is tagged on the server before bakery (or load.sh) has checked the image ids.

`export`/`import` are for users who must flatten an image into one layer: `docker import`
starts from an empty config, so `import` re-applies ENV, ENTRYPOINT, CMD, WORKDIR, USER and
labels from the export's manifest with `--change`.

The package, one module per concept (arrows point down; none imports this package's __init__):

    exportimport export/import: flattened images and their restored config
    save         plan (images, layers a delta omits) and write a bundle
    loader       load.sh (bakery/data/load.sh) with a bundle's facts filled in
    load         check the daemon, docker load, check ids, tag, probe
    archive      the docker save tar: filtered on save, scanned and verified on load
    output       the -o directory: what may be replaced, and replacing a bundle atomically
    streams      zstd processes, helper threads, byte counting and progress bars
    manifest     the manifest model, written and read with every key checked
"""

from __future__ import annotations

from bakery.bundle.archive import (
    SMALL_MEMBER,
    SavedTar,
    TarScan,
    archive_problems,
    blob_name,
    check_size,
    filter_saved_tar,
    member_problem,
    scan_saved_tar,
    verify_archive,
)
from bakery.bundle.exportimport import (
    archive_name_for,
    config_changes,
    config_problems,
    export_bundle,
    import_image,
    import_plain,
)
from bakery.bundle.load import (
    LOAD_MARGIN,
    ProbeVerdict,
    check_daemon,
    check_free_space,
    docker_load,
    has_probe,
    load_bundle,
    local_chains,
    missing_layers,
    missing_layers_error,
    probe_image,
    space_needed,
    verify_bundle,
)
from bakery.bundle.loader import (
    render_loader,
)
from bakery.bundle.manifest import (
    ARCHIVE_NAME,
    LOADER_NAME,
    MANIFEST_NAME,
    Archive,
    Bundle,
    BundleImage,
    ImageConfig,
    Layer,
    Manifest,
    chain_ids,
    locate_bundle,
    manifest_to_json,
    parse_manifest,
    read_bundle,
)
from bakery.bundle.output import (
    SAVE_NAMES,
    check_output,
    install_bundle,
    is_leftover,
    owned_names,
    remove_leftovers,
    write_file_atomic,
)
from bakery.bundle.save import (
    PlannedImage,
    SavePlan,
    build_manifest,
    check_saved,
    layers_to_omit,
    plan_images,
    plan_save,
    save_bundle,
)
from bakery.bundle.streams import (
    CountingReader,
    CountingWriter,
    Written,
    compress_to,
    copy_stream,
    progress_bar,
)
from bakery.defaults import ZSTD_LEVEL as DEFAULT_LEVEL

__all__ = [
    "ARCHIVE_NAME",
    "DEFAULT_LEVEL",
    "LOADER_NAME",
    "LOAD_MARGIN",
    "MANIFEST_NAME",
    "SAVE_NAMES",
    "SMALL_MEMBER",
    "Archive",
    "Bundle",
    "BundleImage",
    "CountingReader",
    "CountingWriter",
    "ImageConfig",
    "Layer",
    "Manifest",
    "PlannedImage",
    "ProbeVerdict",
    "SavePlan",
    "SavedTar",
    "TarScan",
    "Written",
    "archive_name_for",
    "archive_problems",
    "blob_name",
    "build_manifest",
    "chain_ids",
    "check_daemon",
    "check_free_space",
    "check_output",
    "check_saved",
    "check_size",
    "compress_to",
    "config_changes",
    "config_problems",
    "copy_stream",
    "docker_load",
    "export_bundle",
    "filter_saved_tar",
    "has_probe",
    "import_image",
    "import_plain",
    "install_bundle",
    "is_leftover",
    "layers_to_omit",
    "load_bundle",
    "local_chains",
    "locate_bundle",
    "manifest_to_json",
    "member_problem",
    "missing_layers",
    "missing_layers_error",
    "owned_names",
    "parse_manifest",
    "plan_images",
    "plan_save",
    "probe_image",
    "progress_bar",
    "read_bundle",
    "remove_leftovers",
    "render_loader",
    "save_bundle",
    "scan_saved_tar",
    "space_needed",
    "verify_archive",
    "verify_bundle",
    "write_file_atomic",
]
