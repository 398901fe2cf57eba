"""The GitHub App's settings: its id and private key (PEM text or a file read at start), with clear errors that
never show the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from taskmaster.config import ConfigurationError, load_settings


@pytest.fixture(scope="module")
def pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()


def problems(environ: dict[str, str], config_file: Path | None = None) -> list[str]:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(environ, config_file=config_file)
    return caught.value.problems


def test_no_app_by_default() -> None:
    github = load_settings({}).github
    assert not github.app_configured and github.app_private_key is None
    assert github.api_url == "https://api.github.com"


def test_the_app_key_is_read_from_its_file_at_start(tmp_path: Path, pem: str) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text(pem)
    github = load_settings({"GITHUB_APP_ID": "4242", "GITHUB_APP_PRIVATE_KEY_PATH": str(key_file)}).github
    key_file.unlink()  # read when loaded, not when first used
    assert github.app_configured and github.app_id == 4242
    assert github.app_private_key == pem
    assert "PRIVATE KEY" not in repr(github)


def test_the_app_key_can_be_given_inline_with_escaped_newlines(pem: str) -> None:
    one_line = pem.replace("\n", "\\n")
    github = load_settings({"GITHUB_APP_ID": "7", "GITHUB_APP_PRIVATE_KEY": one_line}).github
    assert github.app_private_key == pem


def test_the_github_section_of_the_config_file(tmp_path: Path, pem: str) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text(pem)
    config = tmp_path / "taskmaster.toml"
    config.write_text(
        f'[github]\napp_id = 9\nprivate_key_file = "{key_file}"\napi_url = "https://ghe.example.test/api/v3/"\n'
    )
    github = load_settings({}, config_file=config).github
    assert github.api_url == "https://ghe.example.test/api/v3"
    assert github.app_private_key == pem


def test_an_unreadable_key_file_names_its_variable(tmp_path: Path) -> None:
    (problem,) = problems({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY_PATH": str(tmp_path / "missing.pem")})
    assert problem.startswith("GITHUB_APP_PRIVATE_KEY_PATH: ") and "cannot read" in problem


def test_a_key_file_that_is_not_a_pem_names_its_variable_without_its_content(tmp_path: Path) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text("-----BEGIN RSA PRIVATE KEY-----\nsupersecretmaterial\n-----END RSA PRIVATE KEY-----\n")
    (problem,) = problems({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY_PATH": str(key_file)})
    assert problem.startswith("GITHUB_APP_PRIVATE_KEY_PATH: ") and "not an unencrypted PEM private key" in problem
    assert "supersecretmaterial" not in problem


def test_a_bad_inline_key_is_named_and_never_echoed() -> None:
    (problem,) = problems({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": "hunter2-is-not-a-key"})
    assert problem.startswith("GITHUB_APP_PRIVATE_KEY: ")
    assert "hunter2" not in problem


def test_an_app_needs_both_its_id_and_one_key(tmp_path: Path, pem: str) -> None:
    key_file = tmp_path / "app.pem"
    key_file.write_text(pem)
    (no_key,) = problems({"GITHUB_APP_ID": "1"})
    assert "github.private_key" in no_key
    (no_id,) = problems({"GITHUB_APP_PRIVATE_KEY": pem})
    assert "github.app_id" in no_id and "PRIVATE KEY" not in no_id
    (both,) = problems(
        {"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY": pem, "GITHUB_APP_PRIVATE_KEY_PATH": str(key_file)}
    )
    assert "not both" in both and "PRIVATE KEY-----" not in both
    (bad_id,) = problems({"GITHUB_APP_ID": "my-app", "GITHUB_APP_PRIVATE_KEY": pem})
    assert bad_id.startswith("GITHUB_APP_ID: ")


def test_the_api_url_must_be_http() -> None:
    (problem,) = problems({"GITHUB_API_URL": "ghe.example.test"})
    assert problem.startswith("GITHUB_API_URL: ")
