"""load.sh: the same checks and steps as `load`, for servers without bakery.

The script is bakery/data/load.sh (checked by shellcheck); a saved bundle gets a copy with its
facts filled in for the @TOKENS@ (archive, sha256, sizes, images, required layers, probes).
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from importlib import resources

from bakery import __version__
from bakery.bundle.load import has_probe, space_needed
from bakery.bundle.manifest import Manifest

LOADER_RESOURCE = "data/load.sh"


def loader_template() -> str:
    """bakery/data/load.sh as shipped in the package."""
    return resources.files("bakery").joinpath(LOADER_RESOURCE).read_text(encoding="utf-8")


def _shell_lines(rows: Sequence[Sequence[str]]) -> str:
    return shlex.quote("\n".join(" ".join(row) for row in rows))


def render_loader(manifest: Manifest) -> str:
    """load.sh for a saved bundle: its facts embedded, the logic in loader_template()."""
    archive = manifest.archives[0]
    since = manifest.since or {}
    bases = ", ".join(f"{i.get('ref')} {str(i.get('id'))[:19]}" for i in since.get("images", []))
    env = {i.id: dict(e.partition("=")[::2] for e in i.config.env) for i in manifest.images}
    values = {
        "@VERSION@": __version__,
        "@ARCHIVE@": shlex.quote(archive.file),
        "@SHA256@": archive.sha256,
        "@BYTES@": str(archive.bytes),
        "@NEED@": str(space_needed(manifest)),
        "@KIND@": manifest.kind,
        "@SINCE@": shlex.quote(f"{bases}, saved {since.get('created', '?')}" if since else ""),
        "@IMAGES@": _shell_lines([(i.id, t) for i in manifest.images for t in i.tags or ("",)]),
        "@REQUIRED@": _shell_lines(
            [
                (layer.chain_id, f"layer {n + 1}/{len(i.layers)} of {i.ref}")
                for i, n, layer in manifest.required_layers()
            ]
        ),
        "@PROBES@": _shell_lines(
            [
                (i.id, env[i.id].get("BAKERY_ACCELERATOR", "cpu"))
                for i in manifest.images
                if has_probe(i)
            ]
        ),
    }
    text = loader_template()
    for token, value in values.items():
        text = text.replace(token, value)
    return text
