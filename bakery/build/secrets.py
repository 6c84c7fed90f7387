"""Secret files for one build (pip.conf, CA, mirror URLs): never in a layer, removed after."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bakery import engine
from bakery.build.options import BuildOptions


@contextmanager
def build_secrets(
    options: BuildOptions, torch_index: str | None = None, python_mirror: str | None = None
) -> Iterator[tuple[engine.Secret, ...]]:
    """Secret files for one build, in a private temp dir removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="bakery-secrets-"))
    try:
        secrets = []
        pipconf = tmp / "pip.conf"
        pipconf.write_text(options.pip.pip_conf(), encoding="utf-8")
        secrets.append(engine.Secret("pipconf", pipconf))
        if options.ca_cert is not None:
            secrets.append(engine.Secret("ca", options.ca_cert))
        if torch_index is not None:
            path = tmp / "torch-index"
            path.write_text(torch_index, encoding="utf-8")
            secrets.append(engine.Secret("torch-index", path))
        if python_mirror is not None:
            path = tmp / "python-mirror"
            path.write_text(python_mirror, encoding="utf-8")
            secrets.append(engine.Secret("python-mirror", path))
        for path in tmp.iterdir():
            path.chmod(0o600)
        yield tuple(secrets)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
