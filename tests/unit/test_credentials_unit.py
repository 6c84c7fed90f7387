"""Credentials never shown (redact) and never stored in a dev container's config or a build."""

from __future__ import annotations

from pathlib import Path

import pytest

from bakery import devbox
from bakery.build import BuildOptions, build_secrets
from bakery.errors import redact

REDACT: list[tuple[str, str, str]] = [
    ("userinfo", "https://user:tok@host/simple", "https://***@host/simple"),
    ("password-with-at", "https://user:p@ss@host/simple", "https://***@host/simple"),
    ("password-with-slash", "https://user:pa/ss@host/simple", "https://***@host/simple"),
    ("password-with-both", "http://u:a/b@c@proxy:3128", "http://***@proxy:3128"),
    ("token-param", "https://host/simple?token=abc123", "https://host/simple?token=***"),
    ("access-token-param", "https://host/s?x=1&access_token=abc&y=2",
     "https://host/s?x=1&access_token=***&y=2"),
    ("api-key-param", "https://host/s?api_key=k3y", "https://host/s?api_key=***"),
    ("signature-param", "https://b.s3/x?X-Amz-Signature=abc", "https://b.s3/x?X-Amz-Signature=***"),
    ("two-urls", "index https://u:p@a/s; extra https://b/s?token=t (from flags)",
     "index https://***@a/s; extra https://b/s?token=*** (from flags)"),
    ("no-credentials", "https://pypi.org/simple?page=2", "https://pypi.org/simple?page=2"),
    ("local-path", "/opt/wheels", "/opt/wheels"),
]  # fmt: skip


@pytest.mark.parametrize(("url", "expected"), [c[1:] for c in REDACT], ids=[c[0] for c in REDACT])
def test_redact(url: str, expected: str) -> None:
    assert redact(url) == expected


HOST_ENV = {
    "HTTPS_PROXY": "http://alice:pr0xy-s3cret@proxy.internal:3128",
    "http_proxy": "http://proxy.internal:3128",
    "PIP_INDEX_URL": "https://pypi.internal/simple?token=idx-s3cret",
    "PIP_EXTRA_INDEX_URL": "https://bob:p@ss/word@mirror.internal/simple",
    "HF_ENDPOINT": "http://hf-mirror.internal",
    "HF_TOKEN": "hf_s3cret",
}


def test_settings_with_credentials_are_not_stored_in_the_container() -> None:
    assert devbox.stored_env(HOST_ENV) == {
        "http_proxy": "http://proxy.internal:3128",
        "HF_ENDPOINT": "http://hf-mirror.internal",
    }
    assert set(devbox.credential_names(HOST_ENV)) == {
        "HTTPS_PROXY",
        "PIP_INDEX_URL",
        "PIP_EXTRA_INDEX_URL",
    }


def test_hf_token_is_not_passed_to_builds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Dockerfile step mounts an hf_token secret, so bakery does not hand one to BuildKit."""
    monkeypatch.setenv("HF_TOKEN", "hf_s3cret")
    with build_secrets(BuildOptions(root=tmp_path)) as secrets:
        assert [s.id for s in secrets] == ["pipconf"]
        assert all("hf_s3cret" not in s.src.read_text(encoding="utf-8") for s in secrets)


def test_no_template_step_mounts_an_hf_token() -> None:
    template = (Path(__file__).resolve().parents[2] / "Dockerfile.in").read_text(encoding="utf-8")
    assert "hf_token" not in template
