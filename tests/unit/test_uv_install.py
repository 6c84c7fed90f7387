"""uv installs the torch and application stacks: the pip configuration reaches it, pins stay.

with-build-secrets is run for real (sh) on a sample pip configuration in a folder that stands in
for /run/secrets; the rendered Dockerfiles are read as text.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bakery" / "data" / "with-build-secrets"
CPU = ROOT / "images" / "2.13.0-cpu-py3.11" / "Dockerfile"
SLIM = ROOT / "images" / "2.13.0-cpu-py3.11-slim" / "Dockerfile"
TRANSLATED = ("UV_", "SSL_CERT_FILE")


def translated(secrets: Path, script: Path = SCRIPT) -> dict[str, str]:
    """The UV_* and SSL_CERT_FILE variables with-build-secrets hands to the command it runs."""
    env = {"PATH": os.environ["PATH"], "BAKERY_SECRETS_DIR": str(secrets)}
    done = subprocess.run(
        ["sh", str(script), "env"], env=env, capture_output=True, text=True, check=True, timeout=30
    )
    pairs = (line.partition("=") for line in done.stdout.splitlines())
    return {k: v for k, _, v in pairs if k.startswith(TRANSLATED)}


def secrets_dir(tmp_path: Path, pipconf: str, ca: bool = False) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "pipconf").write_text(pipconf, encoding="utf-8")
    if ca:
        (folder / "ca").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    return folder


CASES = [
    pytest.param(
        "[global]\nindex-url = https://u:p@mirror.example/simple\n",
        {"UV_DEFAULT_INDEX": "https://u:p@mirror.example/simple"},
        id="index-url",
    ),
    pytest.param(
        "[global]\nextra-index-url = file:///mnt/pip-local-1/simple\n"
        "    file:///mnt/pip-local-2/simple\n",
        {"UV_EXTRA_INDEX_URL": "file:///mnt/pip-local-1/simple file:///mnt/pip-local-2/simple"},
        id="extra-index-url, two lines: space-separated",
    ),
    pytest.param(
        "[global]\nfind-links = /mnt/pip-local-0 /mnt/pip-local-3/wheels\n",
        {"UV_FIND_LINKS": "/mnt/pip-local-0,/mnt/pip-local-3/wheels"},
        id="find-links: comma-separated for uv",
    ),
    pytest.param(
        "[global]\ntrusted-host = a.example\n  b.example\n",
        {"UV_INSECURE_HOST": "a.example b.example"},
        id="trusted-host",
    ),
    pytest.param(
        "[global]\ncert = /etc/ssl/mirror.pem\n",
        {"SSL_CERT_FILE": "/etc/ssl/mirror.pem"},
        id="cert without the ca secret",
    ),
    pytest.param(
        "[global]\nfind-links = /mnt/pip-local-0\n[install]\nfind-links = /mnt/pip-local-1\n",
        {"UV_FIND_LINKS": "/mnt/pip-local-1"},
        id="install section overrides global, as in pip",
    ),
    pytest.param(
        "[global]\nindex_url = https://mirror.example/simple\nno-index = true\n",
        {"UV_DEFAULT_INDEX": "https://mirror.example/simple", "UV_NO_INDEX": "1"},
        id="underscore spelling and no-index",
    ),
    pytest.param(
        "[global]\nindex-url = https://x.example/simple?a=1&b='$(touch${IFS}/tmp/pwn)'`id`\n",
        {"UV_DEFAULT_INDEX": "https://x.example/simple?a=1&b='$(touch${IFS}/tmp/pwn)'`id`"},
        id="shell metacharacters arrive intact, never run",
    ),
    pytest.param("[global]\ntimeout = 60\n", {}, id="nothing uv needs"),
]


@pytest.mark.parametrize(("pipconf", "expected"), CASES)
def test_pipconf_reaches_uv(tmp_path: Path, pipconf: str, expected: dict[str, str]) -> None:
    assert translated(secrets_dir(tmp_path, pipconf)) == expected


def test_the_ca_secret_beats_the_files_cert(tmp_path: Path) -> None:
    """pip's precedence: PIP_CERT from the ca secret overrides the configuration file's cert."""
    secrets = secrets_dir(tmp_path, "[global]\ncert = /etc/ssl/mirror.pem\n", ca=True)
    assert translated(secrets) == {"SSL_CERT_FILE": str(secrets / "ca")}


def test_the_translation_prints_nothing(tmp_path: Path) -> None:
    """The index URL may hold credentials: nothing of it reaches the build log."""
    secrets = secrets_dir(tmp_path, "[global]\nindex-url = https://user:s3cret@m.example/s\n")
    env = {"PATH": os.environ["PATH"], "BAKERY_SECRETS_DIR": str(secrets)}
    done = subprocess.run(
        ["sh", str(SCRIPT), "true"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_a_broken_translation_is_caught(tmp_path: Path) -> None:
    """The table above can fail: find-links joined with spaces (pip's way) is not uv's."""
    broken = tmp_path / "with-build-secrets"
    text = SCRIPT.read_text(encoding="utf-8")
    assert '("UV_FIND_LINKS", ",")' in text
    broken.write_text(text.replace('("UV_FIND_LINKS", ",")', '("UV_FIND_LINKS", " ")'))
    secrets = secrets_dir(tmp_path, "[global]\nfind-links = /a /b\n")
    assert translated(secrets, broken) != {"UV_FIND_LINKS": "/a,/b"}
    assert translated(secrets) == {"UV_FIND_LINKS": "/a,/b"}


def run_steps(dockerfile: Path) -> list[str]:
    """The RUN instructions of a rendered Dockerfile, continuation lines joined."""
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    return [line for line in text.splitlines() if line.startswith("RUN ")]


def uv_installs(dockerfile: Path) -> list[str]:
    return [step for step in run_steps(dockerfile) if "/opt/uv/bin/uv pip install" in step]


def test_both_install_steps_use_uv_under_the_constraints() -> None:
    steps = [" ".join(step.split()) for step in uv_installs(CPU)]
    assert len(steps) == 2  # the torch stack, then the application stack
    assert '"$@" -c /opt/bakery/constraints.txt torch &&' in steps[0]
    assert "-c /opt/bakery/constraints.txt -r /opt/bakery/requirements.txt &&" in steps[1]
    others = [s for s in run_steps(CPU) if "pip install" in s and s not in uv_installs(CPU)]
    assert [s for s in others if " uv==0.13.9" not in s] == []  # only uv-tool's own install


@pytest.mark.parametrize(
    "needed",
    [
        "--mount=type=cache,id=bakery-uv-wheels,target=/root/.cache/uv,sharing=locked",
        "--mount=type=bind,from=uv-tool,source=/opt/uv,target=/opt/uv",
        "--mount=type=secret,id=pipconf",
        "--mount=type=secret,id=ca",
        "UV_CACHE_DIR=/root/.cache/uv",
        "UV_LINK_MODE=copy",
        "UV_PYTHON_DOWNLOADS=never",
        "set -- /opt/uv/bin/uv pip install --python /opt/venv/bin/python",
        "--index-strategy unsafe-best-match",
        'if with-build-secrets "$@" --offline --dry-run >/dev/null 2>&1; then set -- "$@" --offline;',
        '>&2; fi && with-build-secrets "$@"',
    ],
)
def test_each_uv_step_has(needed: str) -> None:
    for step in uv_installs(CPU):
        assert needed in " ".join(step.split()), step


def test_uv_is_not_left_in_the_image() -> None:
    """uv lives in the uv-tool stage; the image stage only bind-mounts it."""
    text = CPU.read_text(encoding="utf-8")
    image_stage = text.split("FROM system AS image", 1)[1]
    assert "FROM system AS uv-tool" in text.split("FROM system AS image", 1)[0]
    assert "pip install uv==" not in image_stage
    assert "COPY --from=uv-tool" not in image_stage
    assert "ENV UV_" not in text
    assert "ARG UV_" not in text


def test_index_mode_names_the_torch_index_as_the_default_index() -> None:
    torch_step = uv_installs(CPU)[0]
    assert 'index) set -- --default-index "$(cat /run/secrets/torch-index' in torch_step


def test_slim_has_no_uv_stage_and_keeps_its_stage_name() -> None:
    text = SLIM.read_text(encoding="utf-8")
    assert "uv-tool" not in text
    assert "bakery-uv-wheels" not in text
    assert " AS image\n" in text


def test_the_bench_measures_the_templates_uv_step() -> None:
    """bench/variant.py's uv side runs the very text Dockerfile.in renders (no drift)."""
    from bench.variant import UV_INSTALL  # noqa: PLC0415 - the bench only for this check

    stack = UV_INSTALL.format(args="-c /opt/bakery/constraints.txt -r /opt/bakery/requirements.txt")
    assert stack in CPU.read_text(encoding="utf-8")
