"""Process environment for the Hugging Face libraries, set before any of them is imported.

huggingface_hub reads HF_HUB_OFFLINE and HF_HOME once, at import time, so `prepare_environment`
must run before the first `import diffusers` / `import transformers` (the CLI imports the training
modules lazily for that reason).
"""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import MutableMapping
from importlib import metadata
from pathlib import Path

OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
QUIET_VARS = {
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}
VERSIONED_PACKAGES = (
    "torch",
    "diffusers",
    "transformers",
    "peft",
    "safetensors",
    "huggingface-hub",
    "tokenizers",
    "accelerate",
    "numpy",
    "pillow",
)


def prepare_environment(online: bool, environ: MutableMapping[str, str] | None = None) -> None:
    """Offline unless `online`; a usable HF_HOME even with an unwritable or missing HOME; quiet libs."""
    env = os.environ if environ is None else environ
    for name in OFFLINE_VARS:
        env[name] = "0" if online else "1"
    for name, value in QUIET_VARS.items():
        env.setdefault(name, value)
    if "HF_HOME" not in env and not _usable_cache(_default_hf_home(env)):
        env["HF_HOME"] = str(_private_temp_dir("hf"))


def _default_hf_home(env: MutableMapping[str, str]) -> Path:
    """Where huggingface_hub would put its cache: $XDG_CACHE_HOME or ~/.cache, + /huggingface."""
    home = env.get("HOME") or os.path.expanduser("~")  # "~" stays literal with no passwd entry
    return Path(env.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")) / "huggingface"


def _usable_cache(path: Path) -> bool:
    """An existing readable cache (it may hold models), or one that could be created."""
    if not path.is_absolute():  # HOME unset and no passwd entry: "~" stays literal
        return False
    if path.is_dir():
        return os.access(path, os.R_OK | os.X_OK)
    parent = next((p for p in path.parents if p.exists()), None)
    return parent is not None and parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)


def _private_temp_dir(kind: str) -> Path:
    """A per-user folder under the temp dir, reused across runs; never one another user owns."""
    path = Path(tempfile.gettempdir()) / f"stylelora-{kind}-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        if path.stat().st_uid == os.getuid() and not path.is_symlink():
            return path
    except OSError:
        pass
    return Path(tempfile.mkdtemp(prefix=f"stylelora-{kind}-"))


def package_versions() -> dict[str, str]:
    """Versions of Python and of every library whose behaviour shapes a run."""
    from stylelora import __version__  # noqa: PLC0415 - avoid an import cycle at module load

    versions = {"python": platform.python_version(), "stylelora": __version__}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions
