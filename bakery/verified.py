"""Images whose torch stack was read back and found right, so a code-only rebuild can skip it.

After each build bakery runs the image once to read the torch stack back (builder.verify_image).
A rebuild after a training-code change re-runs only the code COPY (and the WORKDIR after it):
every layer under them is BuildKit's cached result, identical by content to a layer of an image
that was already read back. This module records each read-back that passed, keyed by what the
check depends on (the variant, the check's command, the image's ENV/USER/ENTRYPOINT/CMD/WORKDIR),
with the layer chain it saw; a new image may reuse the verdict when only code steps ran and every
layer but the ones those steps wrote is that chain (issue 17, goal 2). Anything else reads back.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bakery.atomicfile import write_atomic
from bakery.engine import ImageInfo

RECORDS = Path(".bakery") / "verified.json"  # under the project root, beside the build logs
MAX_RECORDS = 200  # the newest are kept; an old record only costs a read-back
# Steps that may re-run without invalidating the read-back: they write only the training code
# (to /opt/bakery/src/stylelora, a package of its own that cannot shadow torch) or a directory.
CODE_STEPS = ("COPY stylelora ", "WORKDIR ")
_STEP_PREFIX = re.compile(r"^\[[^\]]*\]\s*")


def verification_key(variant_id: str, command: Sequence[str], info: ImageInfo) -> str:
    """What the read-back's verdict depends on besides the layers."""
    facts = {
        "variant": variant_id,
        "command": list(command),
        "env": dict(info.env),
        "user": info.user,
        "entrypoint": list(info.entrypoint or ()),
        "cmd": list(info.cmd or ()),
        "workdir": info.workdir,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def only_code_steps(steps_run: Sequence[str]) -> bool:
    """True when every step that executed is a code COPY or a WORKDIR (none: a full cache hit)."""
    return all(_STEP_PREFIX.sub("", step).startswith(CODE_STEPS) for step in steps_run)


def reusable(
    records: Mapping[str, Any], key: str, layers: Sequence[str], steps_run: Sequence[str]
) -> bool:
    """May the image with `layers` reuse the verdict recorded under `key`?"""
    seen = records.get(key)
    if not isinstance(seen, list) or not only_code_steps(steps_run):
        return False
    shared = 0
    for old, new in zip(seen, layers, strict=False):
        if old != new:
            break
        shared += 1
    return shared >= len(layers) - len(steps_run) and shared > 0


def load_records(root: Path) -> dict[str, Any]:
    """The recorded read-backs; an unreadable or foreign file counts as none (read back again)."""
    try:
        data = json.loads((root / RECORDS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember(root: Path, key: str, layers: Sequence[str]) -> None:
    """Record a read-back that passed (atomically: a torn file would only cost a read-back)."""
    records = load_records(root)
    records.pop(key, None)
    records[key] = list(layers)
    kept = dict(list(records.items())[-MAX_RECORDS:])
    write_atomic(root / RECORDS, json.dumps(kept, indent=1) + "\n")
