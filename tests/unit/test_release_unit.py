"""Release conventions: immutable tags from the commit, OCI labels without credentials."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bakery import publish
from bakery.matrix import load_matrix
from bakery.release import OCI, Revision, immutable_tags, oci_labels, read_revision, web_url

ROOT = Path(__file__).resolve().parents[2]
SHA = "0123456789abcdef0123456789abcdef01234567"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    (tmp_path / "pyproject.toml").write_text('[project]\nlicense = "MIT"\n', encoding="utf-8")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    git(
        tmp_path,
        "remote",
        "add",
        "origin",
        "https://x-access-token:ghs_SECRET@github.com/lab/bakery.git",
    )
    return tmp_path


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        ("git@github.com:lab/bakery.git", "https://github.com/lab/bakery"),
        (
            "https://x-access-token:ghs_SECRET@github.com/lab/bakery.git",
            "https://github.com/lab/bakery",
        ),
        ("ssh://git@gitlab.example/lab/bakery.git", "https://gitlab.example/lab/bakery"),
        ("/srv/git/bakery.git", ""),
    ],
    ids=["scp-like", "token-in-https", "ssh-url", "local-path"],
)
def test_web_url_never_carries_credentials(remote: str, url: str) -> None:
    assert web_url(remote) == url


def test_revision_from_git_without_a_version_tag(repo: Path) -> None:
    revision = read_revision(repo, environ={})
    assert revision is not None
    assert len(revision.sha) == 40
    assert revision.version == ""
    assert revision.source == "https://github.com/lab/bakery"
    assert revision.created.endswith("Z")


def test_a_v_tag_on_the_commit_is_the_version(repo: Path) -> None:
    git(repo, "tag", "v1.4.0")
    git(repo, "tag", "nightly")
    revision = read_revision(repo, environ={})
    assert revision is not None
    assert revision.version == "v1.4.0"
    assert immutable_tags("2.13.0-cpu-py3.11", revision) == (
        f"2.13.0-cpu-py3.11-{revision.sha[:7]}",
        "2.13.0-cpu-py3.11-v1.4.0",
    )


def test_github_variables_when_there_is_no_checkout(tmp_path: Path) -> None:
    env = {"GITHUB_SHA": SHA, "GITHUB_REF_TYPE": "tag", "GITHUB_REF_NAME": "v2.0.0",
           "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "lab/bakery"}  # fmt: skip
    assert read_revision(tmp_path, environ=env) == Revision(
        SHA, "v2.0.0", "", "https://github.com/lab/bakery"
    )


def test_no_git_and_no_github_means_no_revision_and_no_immutable_tag(tmp_path: Path) -> None:
    assert read_revision(tmp_path, environ={}) is None
    assert immutable_tags("2.13.0-cpu-py3.11", None) == ()


def test_oci_labels_name_source_revision_created_licenses_url(repo: Path) -> None:
    labels = oci_labels(repo, read_revision(repo, environ={}))
    assert set(labels) == {
        f"{OCI}.{k}" for k in ("source", "revision", "created", "licenses", "url")
    }
    assert labels[f"{OCI}.licenses"] == "MIT"
    assert "ghs_SECRET" not in str(labels)


def test_publish_tags_put_immutable_tags_between_full_and_moving() -> None:
    matrix = load_matrix(ROOT / "matrix.toml")
    v = next(v for v in matrix.variants if v.id == "2.13.0-cpu-py3.11")
    moving = publish.moving_tags(matrix.variants, publish.default_pythons(ROOT / "matrix.toml"))
    tags = publish.tags_for(v, moving, Revision(SHA, "v1.0.0"))
    assert tags == ("2.13.0-cpu-py3.11", "2.13.0-cpu-py3.11-0123456", "2.13.0-cpu-py3.11-v1.0.0",
                    "2.13.0-cpu", "cpu")  # fmt: skip
