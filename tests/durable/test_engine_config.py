"""DBOS is configured from the settings: system database, explicit version and executor id, no telemetry."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import taskmaster
from taskmaster.durable import engine, names
from tests.conftest import make_settings


def test_embedded_default_puts_the_system_database_in_the_state_dir(state_dir: Path) -> None:
    config = engine.dbos_config(make_settings(state_dir))

    assert config["system_database_url"] == f"sqlite:///{(state_dir / 'dbos.sqlite').resolve()}"
    assert config["name"] == names.APP_NAME
    assert config["application_version"] == taskmaster.__version__
    assert config["executor_id"] == socket.gethostname()
    assert config["enable_otlp"] is False
    assert "conductor_key" not in config


def test_postgresql_uses_the_app_database_with_psycopg_and_the_dbos_schema(state_dir: Path) -> None:
    settings = make_settings(state_dir, "postgresql://tm:s3cret@db.example:6543/taskmaster", DB_SSLMODE="require")

    config = engine.dbos_config(settings)

    assert config["system_database_url"] == (
        "postgresql+psycopg://tm:s3cret@db.example:6543/taskmaster?sslmode=require"
    )
    assert config["dbos_system_schema"] == "dbos"
    assert config["application_version"] == taskmaster.__version__


def test_executor_id_is_the_configured_worker_id_or_a_stable_host_name(state_dir: Path) -> None:
    configured = make_settings(state_dir, TASKMASTER_WORKER_ID="builder-7")
    default = make_settings(state_dir)

    assert engine.executor_id(configured, "process") == "builder-7"
    assert engine.executor_id(configured, "in-process") == "builder-7"
    assert engine.executor_id(default, "process") == socket.gethostname()
    assert engine.executor_id(default, "in-process") == f"{socket.gethostname()}:in-process"
    assert engine.executor_id(default, "process") == engine.executor_id(make_settings(state_dir))


def test_importing_the_client_and_worker_modules_creates_no_dbos_and_the_client_needs_no_jobs() -> None:
    script = (
        "import sys\n"
        "import taskmaster.durable.client\n"
        "assert 'taskmaster.worker.jobs' not in sys.modules, 'the client imported the jobs'\n"
        "import taskmaster.worker.main, taskmaster.worker.runtime, taskmaster.worker.jobs\n"
        "import dbos._dbos as d\n"
        "print(d._dbos_global_instance is None)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)

    assert out.stdout.strip() == "True"
