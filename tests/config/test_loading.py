"""Settings: seed variable names, precedence, the embedded default, and one clear line per problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmaster.config import ConfigurationError, load_settings


def test_no_database_configured_means_embedded_sqlite_under_the_state_dir(tmp_path: Path) -> None:
    settings = load_settings({"TASKMASTER_HOME": str(tmp_path / "st")}, config_file=None)
    assert settings.embedded
    assert settings.database_url == f"sqlite+aiosqlite:///{(tmp_path / 'st' / 'taskmaster.db').resolve()}"


def test_seed_db_variables_build_a_postgres_url_with_escaped_password() -> None:
    settings = load_settings(
        {
            "DB_HOST": "db.internal",
            "DB_PORT": "6543",
            "DB_NAME": "tm",
            "DB_USER": "ci",
            "DB_PASSWORD": "p@ss/w",
        }
    )
    assert settings.database_url == "postgresql+asyncpg://ci:p%40ss%2Fw@db.internal:6543/tm"
    assert not settings.embedded


def test_database_url_wins_over_db_host() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://u@h1/a", "DB_HOST": "h2"})
    assert settings.database_url == "postgresql+asyncpg://u@h1/a"


def test_seed_defaults_for_remote_services() -> None:
    settings = load_settings({"WSL2_INSTANCE_PATH": "/mnt/wsl/inst", "CODEGEN_ORG_ID": "42"})
    assert settings.agentapi.url == "http://localhost:3284"
    assert settings.workspace_root == Path("/mnt/wsl/inst")
    assert settings.codegen.org_id == "42"
    assert settings.server.port == 3000


def test_every_bad_variable_is_named_on_its_own_line() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"DB_PORT": "notanumber", "DB_POOL_SIZE": "0", "DATABASE_URL": "mysql://x"})
    problems = caught.value.problems
    assert len(problems) == 3
    assert any(p.startswith("DB_PORT: ") and "notanumber" in p for p in problems)
    assert any(p.startswith("DB_POOL_SIZE: ") for p in problems)
    assert any(p.startswith("DATABASE_URL: ") and "postgresql://" in p for p in problems)


def test_secret_values_are_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"TASKMASTER_SECRET_KEYS": "", "DB_PASSWORD": "hunter2", "DB_PORT": "x"})
    assert "hunter2" not in str(caught.value)


def test_toml_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    config = tmp_path / "taskmaster.toml"
    config.write_text('[database]\nhost = "from-file"\nport = 7000\n[server]\nport = 4000\n')
    settings = load_settings({"DB_PORT": "7001"}, config_file=config)
    assert settings.database.host == "from-file"
    assert settings.database.port == 7001
    assert settings.server.port == 4000


def test_toml_errors_name_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "taskmaster.toml"
    config.write_text('[server]\nport = "high"\nbogus = 1\n')
    with pytest.raises(ConfigurationError) as caught:
        load_settings({}, config_file=config)
    text = str(caught.value)
    assert f"{config} [server] server.port" in text
    assert "server.bogus: unknown setting" in text


def test_broken_toml_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "taskmaster.toml"
    config.write_text("[server\n")
    with pytest.raises(ConfigurationError) as caught:
        load_settings({}, config_file=config)
    assert len(caught.value.problems) == 1
    assert "not valid TOML" in caught.value.problems[0]


def test_missing_explicit_config_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"TASKMASTER_CONFIG: file .* does not exist"):
        load_settings({"TASKMASTER_CONFIG": str(tmp_path / "nope.toml")})


def test_a_password_inside_a_bad_url_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"DATABASE_URL": "mysql://admin:pw-distinct-77@db/x"})
    assert "pw-distinct-77" not in str(caught.value)
    assert "mysql://admin:***@db/x" in str(caught.value)


def test_the_local_forge_poll_interval_is_read_from_its_variable_and_bounded() -> None:
    assert load_settings({}).forges.local_poll_seconds == 2.0
    assert load_settings({"TASKMASTER_LOCAL_FORGE_POLL_SECONDS": "0.5"}).forges.local_poll_seconds == 0.5
    with pytest.raises(ConfigurationError) as caught:
        load_settings({"TASKMASTER_LOCAL_FORGE_POLL_SECONDS": "0"})
    (problem,) = caught.value.problems
    assert problem.startswith("TASKMASTER_LOCAL_FORGE_POLL_SECONDS: ") and "greater than 0" in problem
