"""bakery.host: one rule for the CA bundle, the same for builds, `up` and `doctor`.

A bundle the user named (--ca-cert, or a PIP_CERT/REQUESTS_CA_BUNDLE/SSL_CERT_FILE variable)
that does not exist is an error naming the option or variable; with none named there is none.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bakery import devbox
from bakery.cli import build_parser
from bakery.cli import devbox as devbox_cli
from bakery.errors import UsageError
from bakery.host import CA_ENV, find_ca_bundle

ROOT = Path(__file__).resolve().parents[2]


def pem(tmp_path: Path, name: str = "ca.pem") -> Path:
    path = tmp_path / name
    path.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    return path


def test_a_named_option_that_does_not_exist_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        find_ca_bundle(tmp_path / "gone\x1b.pem", {}, option="--ca-cert")
    assert info.value.what == f"CA bundle {tmp_path}/gone\\x1b.pem not found"
    assert "--ca-cert" in info.value.fix


@pytest.mark.parametrize("name", CA_ENV)
def test_a_named_variable_that_does_not_exist_is_an_error_naming_it(
    tmp_path: Path, name: str
) -> None:
    with pytest.raises(UsageError) as info:
        find_ca_bundle(None, {name: str(tmp_path / "gone")})
    assert f"(from ${name})" in info.value.what
    assert f"${name}" in info.value.fix


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        pytest.param({}, None, id="nothing-set"),
        pytest.param({"PIP_CERT": ""}, None, id="empty-is-unset"),
        pytest.param({"PIP_CERT": "", "SSL_CERT_FILE": "ca.pem"}, "ca.pem", id="skips-empty"),
        pytest.param({"PIP_CERT": "ca.pem", "SSL_CERT_FILE": "gone"}, "ca.pem", id="first-set"),
    ],
)
def test_the_automatic_look_up_skips_what_is_not_set(
    tmp_path: Path, env: dict[str, str], expected: str | None
) -> None:
    pem(tmp_path)
    found = find_ca_bundle(None, {k: str(tmp_path / v) if v else v for k, v in env.items()})
    assert found == (tmp_path / expected if expected else None)


def test_an_existing_named_bundle_wins_over_the_variables(tmp_path: Path) -> None:
    chosen = pem(tmp_path, "chosen.pem")
    assert find_ca_bundle(chosen, {"PIP_CERT": str(pem(tmp_path))}) == chosen


def up_options(tmp_path: Path, *extra: str) -> devbox.UpOptions:
    workspace = tmp_path / "ws"
    workspace.mkdir(exist_ok=True)
    args = build_parser().parse_args([
        "up", "--matrix", str(ROOT / "matrix.toml"), "--target", "cpu",
        "--workspace", str(workspace), "--user", "4321:4322", "--pip-cache", "none",
        "--hf-home", "none", "--dev-root", str(tmp_path), *extra,
    ])  # fmt: skip
    return devbox.up_options(devbox_cli.up_request(args))


@pytest.fixture
def no_ca_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devbox.options, "_image_exists", lambda ref: True)
    for name in CA_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_ca_env")
def test_up_refuses_a_missing_ca_cert_before_creating_anything(tmp_path: Path) -> None:
    """It used to be resolved unchecked and bind-mounted (Docker makes a folder of it)."""
    with pytest.raises(UsageError, match=r"CA bundle .*gone\.pem not found"):
        up_options(tmp_path, "--ca-cert", str(tmp_path / "gone.pem"))


@pytest.mark.usefixtures("no_ca_env")
def test_up_refuses_a_ca_variable_pointing_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to be skipped silently, leaving the container without the proxy's CA."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "gone.pem"))
    with pytest.raises(UsageError, match=r"\(from \$SSL_CERT_FILE\) not found"):
        up_options(tmp_path)


@pytest.mark.usefixtures("no_ca_env")
def test_up_mounts_the_named_or_found_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert up_options(tmp_path).ca_cert is None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(pem(tmp_path)))
    assert up_options(tmp_path).ca_cert == tmp_path / "ca.pem"
    chosen = pem(tmp_path, "chosen.pem")
    assert up_options(tmp_path, "--ca-cert", str(chosen)).ca_cert == chosen
