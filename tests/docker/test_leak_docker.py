"""Secrets passed to a build (a CA bundle, a token) leave no trace in the image or the log.

Every place an image can carry text is searched: `docker history --no-trunc`, every file of
every layer of `docker save`, the image config (labels, env) and the build log. A control build
puts a marker into each of those places on purpose, so a search that cannot find anything
fails the control test instead of passing the leak test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.engine_tests import tar_contents, write_dockerfile

from bakery import base, engine

pytestmark = pytest.mark.docker

Forget = Callable[[str], str]

# Secrets are not part of BuildKit's cache key: NONCE makes the RUN execute on every test run.
READS_MOUNTED_FILES = """\
FROM {BASE}
ARG NONCE
RUN --mount=type=secret,id=ca --mount=type=secret,id=hf_token \\
    echo "run $NONCE" && test -s /run/secrets/ca && test -s /run/secrets/hf_token \\
    && sha256sum /run/secrets/ca /run/secrets/hf_token > /dev/null \\
    && echo secrets-were-readable > /used.txt
"""

CONTROL_BUILD = """\
FROM {BASE}
ARG CONTROL
ENV CONTROL_ENV=${CONTROL}
COPY control.txt /control.txt
RUN echo "${CONTROL}" > /from-run.txt && echo "log ${CONTROL}"
"""


def places_holding(marker: str, image_id: str, log: Path, scratch: Path) -> set[str]:
    """Where `marker` occurs: "history", "layers", "config" and/or "log"."""
    needle = marker.encode()
    found: set[str] = set()
    if any(marker in line for line in engine.image_history(image_id)):
        found.add("history")
    archive = scratch / "image.tar"
    engine.save_image([image_id], archive)
    if any(needle in data for _name, data in tar_contents(archive)):
        found.add("layers")
    info = engine.inspect_image(image_id)
    assert info is not None
    config_text = [*info.labels.keys(), *info.labels.values(), *info.env.values()]
    if any(marker in text for text in config_text):
        found.add("config")
    if needle in log.read_bytes():
        found.add("log")
    return found


def test_control_marker_is_found_everywhere(
    base_image: base.BaseResult, build_dir: Path, tmp_path: Path, unique: str, forget_images: Forget
) -> None:
    marker = f"CONTROL-MARKER-{unique}"
    (build_dir / "control.txt").write_text(marker, encoding="utf-8")
    spec = engine.BuildSpec(
        context=build_dir,
        dockerfile=write_dockerfile(build_dir, CONTROL_BUILD),
        log_path=tmp_path / "control.log",
        build_args={"CONTROL": marker},
        labels={"io.bakery.test.control": marker},
    )
    image_id = forget_images(engine.build_image(spec).image_id)
    assert places_holding(marker, image_id, spec.log_path, tmp_path) == {
        "history",
        "layers",
        "config",
        "log",
    }


def test_build_secrets_leave_no_trace(
    base_image: base.BaseResult, build_dir: Path, tmp_path: Path, unique: str, forget_images: Forget
) -> None:
    ca_marker = f"-----BEGIN CERTIFICATE----- FAKE-CA-{unique}"
    token_marker = f"hf_FAKETOKEN{unique}"
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "ca.pem").write_text(ca_marker + "\n", encoding="utf-8")
    (secrets_dir / "token").write_text(token_marker, encoding="utf-8")
    spec = engine.BuildSpec(
        context=build_dir,
        dockerfile=write_dockerfile(build_dir, READS_MOUNTED_FILES),
        log_path=tmp_path / "secret.log",
        build_args={"NONCE": unique},
        secrets=(
            engine.Secret("ca", secrets_dir / "ca.pem"),
            engine.Secret("hf_token", secrets_dir / "token"),
        ),
    )
    outcome = engine.build_image(spec)
    image_id = forget_images(outcome.image_id)
    assert outcome.steps_run, "the RUN that reads the secrets must have executed"
    for marker in (ca_marker, token_marker, f"FAKE-CA-{unique}"):
        assert places_holding(marker, image_id, spec.log_path, tmp_path) == set(), marker
