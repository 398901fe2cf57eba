"""What a pipeline step can reach, through real pipelines in the real sandbox: a state directory under a private
directory works; the state files, the server's environment, the API and PostgreSQL are out of reach; a missing
bubblewrap is a configuration error that runs nothing; limits fail the step with the limit named."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from taskmaster.auth.service import ensure_local_admin_token
from taskmaster.config import Settings
from taskmaster.config.settings import DatabaseSettings, ExecutorSettings, StepLimitSettings
from taskmaster.db.models import Pipeline, Project
from taskmaster.db.session import Database, create_engine
from taskmaster.pipelines.definition import DefinitionError, load_definition
from taskmaster.pipelines.engine import PipelineEngine
from taskmaster.pipelines.plan import Plan, compile_plan
from taskmaster.pipelines.runs import create_run
from taskmaster.pipelines.states import PipelineStatus
from taskmaster.secrets.box import SecretBox, key_file_path
from taskmaster.workspaces.git_cache import MirrorCache
from tests.support.git import make_pipeline_repo
from tests.support.pipelines import FAST, load

PG_SOCKET = Path("/var/run/postgresql/.s.PGSQL.5432")


class Run:
    """A project on a local repository, with everything (state, workspaces, mirrors) under `settings.state_dir`."""

    def __init__(
        self, db: Database, settings: Settings, repo: Path, project_settings: dict[str, Any] | None = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.repo = repo
        self.project_settings = project_settings or {}
        self.mirror = MirrorCache(settings.mirror_root, max_bytes=1 << 30)

    async def run(self, **engine: Any) -> Pipeline:
        async with self.db.transaction() as session:
            project = Project(
                name=f"app-{self.repo.name}", repository=str(self.repo), forge="local", settings=self.project_settings
            )
            session.add(project)
            await session.flush()
            created = await create_run(session, project, ref="main", mirror=self.mirror)
        await PipelineEngine(
            self.db, self.settings, self.mirror, backoff=FAST, poll_seconds=0.1, grace=1.0, **engine
        ).run(created.id)
        pipeline, _, _ = await load(self.db, created.id)
        return pipeline


@pytest.fixture
def private_settings(settings: Settings, tmp_path: Path) -> Settings:
    """The state directory inside a mode-0700 directory (as under a private home), workspaces and mirrors in it."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    state = home / ".local" / "state" / "taskmaster"
    return settings.model_copy(update={"state_dir": state})


def run_in(
    db: Database, settings: Settings, tmp_path: Path, definition: str, project_settings: dict[str, Any] | None = None
) -> Run:
    repo = tmp_path / f"repo-{len(list(tmp_path.glob('repo-*')))}"
    make_pipeline_repo(repo, definition)
    return Run(db, settings, repo, project_settings)


async def test_state_dir_inside_a_mode_0700_dir_gives_a_green_pipeline(
    db: Database, private_settings: Settings, tmp_path: Path
) -> None:
    definition = (
        "steps:\n"
        "  build: {run: 'test $(pwd) = /workspace || exit 21; echo built > out.txt || exit 22; "
        "grep -qx hello README.md || exit 23; "
        'test "$(git log -1 --format=%s)" = "change .taskmaster.yml" || exit 24\'}\n'
        "  fresh: {run: 'test $(git cat-file -t HEAD) = commit || exit 25', workspace: fresh}\n"
    )
    runner = run_in(db, private_settings, tmp_path, definition)

    pipeline = await runner.run()

    # Each check exits with its own code: a failure's message ("exit code 23") says which one.
    _, steps, _ = await load(db, pipeline.id)
    assert pipeline.status == PipelineStatus.SUCCESS.value, {n: s.error_message for n, s in steps.items()}
    assert steps["build"].status == "success" and steps["fresh"].status == "success"
    assert runner.settings.workspace_root.is_relative_to(private_settings.state_dir)
    assert not stat.S_IMODE((tmp_path / "home").stat().st_mode) & 0o077  # nothing was opened up to get there


async def test_sandbox_required_and_bubblewrap_missing_is_an_error_with_the_install_hint_and_runs_nothing(
    db: Database, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "ran"
    runner = run_in(
        db,
        settings,
        tmp_path,
        f"steps:\n  build: {{run: 'touch {marker}'}}\n  after: {{run: 'true', needs: [build]}}\n",
    )
    tools = tmp_path / "tools"  # git for the checkout, and nothing of the sandbox's
    tools.mkdir()
    git = shutil.which("git")
    assert git is not None
    (tools / "git").symlink_to(git)
    monkeypatch.setenv("PATH", str(tools))

    pipeline = await runner.run()

    _, steps, attempts = await load(db, pipeline.id)
    assert pipeline.status == PipelineStatus.ERROR.value
    assert steps["build"].status == "error" and steps["build"].retry_count == 0  # not retried as infra
    assert len(attempts["build"]) == 1
    message = steps["build"].error_message or ""
    assert "bwrap (bubblewrap)" in message and "apt-get install bubblewrap" in message, message
    assert 'executor.sandbox = "off"' in message
    assert "bubblewrap" in (pipeline.error_message or "")
    assert steps["after"].status != "success" and not marker.exists()


@pytest.fixture
def api_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A stand-in for the Taskmaster API (or AgentAPI): a TCP server on the host's 127.0.0.1, recording requests."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    received: list[bytes] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                received.append(conn.recv(100))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        server.close()
        thread.join(timeout=5)


async def test_a_step_reads_no_state_file_nor_the_server_environment(
    db: Database, private_settings: Settings, tmp_path: Path
) -> None:
    settings = private_settings
    SecretBox.from_settings(settings)  # the key file
    async with db.transaction() as session:
        token_file = await ensure_local_admin_token(session, settings)
    files = [key_file_path(settings), token_file, settings.state_dir / "taskmaster.db"]
    # The embedded database file, made as the server makes it (on the PostgreSQL runs too).
    await create_engine(settings.model_copy(update={"database": DatabaseSettings()})).dispose()
    for path in files:
        assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # A step exits with a code of its own for each thing it could read (11, 12, 13: the files; 14: the environ).
    probes = " ".join(f"cat {path} >/dev/null 2>&1 && exit {11 + number};" for number, path in enumerate(files))
    environ = f"test $(cat /proc/{os.getpid()}/environ 2>/dev/null | wc -c) = 0 || exit 14;"
    definition = (
        "steps:\n"
        f'  offline: {{run: "{probes} {environ} true"}}\n'
        f'  online: {{run: "{probes} {environ} true", network: true}}\n'
    )
    runner = run_in(db, settings, tmp_path, definition)

    pipeline = await runner.run()

    _, steps, _ = await load(db, pipeline.id)
    assert pipeline.status == PipelineStatus.SUCCESS.value, {n: s.error_message for n, s in steps.items()}
    assert steps["offline"].status == "success" and steps["online"].status == "success"


async def test_a_step_reaches_neither_the_api_nor_postgresql_over_tcp_or_unix_socket(
    db: Database, settings: Settings, tmp_path: Path, api_listener: tuple[int, list[bytes]]
) -> None:
    port, received = api_listener
    assert PG_SOCKET.exists(), "PostgreSQL's socket on this machine, the issue's probe"
    with socket.create_connection(("127.0.0.1", 5432), timeout=5):
        pass  # the host does reach PostgreSQL over TCP
    # Exit codes 31-34: a TCP connection made (the API stand-in and PostgreSQL, directly or through slirp's
    # gateway); 35: PostgreSQL's Unix socket; 36: the probe itself cannot run.
    targets = [(host, target) for host in ("127.0.0.1", "10.0.2.2") for target in (port, 5432)]
    tcp = " ".join(
        f"timeout 5 bash -c 'exec 3<>/dev/tcp/{host}/{target}' 2>/dev/null && exit {31 + number};"
        for number, (host, target) in enumerate(targets)
    )
    connect = f'socket.socket(socket.AF_UNIX).connect(\\"{PG_SOCKET}\\")'
    unix = f"python3 -c 'import socket' || exit 36; python3 -c 'import socket; {connect}' 2>/dev/null && exit 35;"
    definition = (
        f'steps:\n  offline: {{run: "{tcp} {unix} true"}}\n  online: {{run: "{tcp} {unix} true", network: true}}\n'
    )
    runner = run_in(db, settings, tmp_path, definition)

    pipeline = await runner.run()

    _, steps, _ = await load(db, pipeline.id)
    assert pipeline.status == PipelineStatus.SUCCESS.value, {n: s.error_message for n, s in steps.items()}
    assert steps["offline"].status == "success" and steps["online"].status == "success"
    assert received == []


async def test_fork_bomb_in_a_pipeline_is_stopped_and_the_step_failed_with_the_limit_named(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    limited = settings.model_copy(
        update={"executor": ExecutorSettings(limits=StepLimitSettings(max_processes=64, cpu_seconds=60))}
    )
    definition = "steps:\n  bomb: {run: \"bash -c 'bomb() { bomb | bomb & }; bomb; sleep 60'\", timeout: 120}\n"
    runner = run_in(db, limited, tmp_path, definition)

    pipeline = await runner.run()

    _, steps, _ = await load(db, pipeline.id)
    assert pipeline.status == PipelineStatus.FAILED.value
    assert steps["bomb"].status == "failed" and steps["bomb"].failure_reason == "code"
    assert "limit: processes" in (steps["bomb"].error_message or "")
    assert steps["bomb"].duration_ms is None or steps["bomb"].duration_ms < 30_000


def test_step_limits_are_read_with_units_and_kept_in_the_plan() -> None:
    definition = load_definition(
        "steps:\n"
        "  build: {run: make, limits: {memory: 512MiB, disk: 2GB, processes: 64, cpu: 600}}\n"
        "  lint: {run: ruff}\n"
    )

    plan = compile_plan(definition)

    assert dict(plan["build"].limits) == {"cpu": 600, "memory": 512 * 1024**2, "processes": 64, "disk": 2 * 10**9}
    assert dict(plan["lint"].limits) == {}
    assert Plan.from_json(plan.to_json()) == plan


def test_an_unknown_or_bad_step_limit_is_named_with_its_line() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_definition("steps:\n  build:\n    run: make\n    limits: {memroy: 1GiB, processes: -1}\n")

    detail = caught.value.detail
    assert ".taskmaster.yml:4" in detail and "memroy" in detail and "processes" in detail, detail


async def test_disk_cap_a_step_asking_for_less_disk_is_stopped_at_its_own_limit(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    definition = (
        "steps:\n"
        "  fill: {run: 'for i in 1 2 3 4 5 6; do head -c 4M /dev/zero > f$i; sleep 0.5; done', limits: {disk: 8MiB}}\n"
        "  small: {run: 'head -c 1M /dev/zero > f; echo fits'}\n"
    )
    runner = run_in(db, settings, tmp_path, definition)

    pipeline = await runner.run()

    _, steps, _ = await load(db, pipeline.id)
    assert steps["fill"].status == "failed" and "limit: disk" in (steps["fill"].error_message or "")
    assert steps["small"].status == "success"


async def test_a_step_asking_above_the_maximum_is_an_error_and_runs_nothing(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    capped = settings.model_copy(
        update={"executor": ExecutorSettings(max_limits=StepLimitSettings(memory_bytes=1024**3))}
    )
    runner = run_in(db, capped, tmp_path, f"steps:\n  big: {{run: 'touch {marker}', limits: {{memory: 2GiB}}}}\n")

    pipeline = await runner.run()

    _, steps, attempts = await load(db, pipeline.id)
    assert pipeline.status == PipelineStatus.ERROR.value and steps["big"].status == "error"
    assert len(attempts["big"]) == 1 and not marker.exists()
    assert "executor.max_limits.memory_bytes" in (steps["big"].error_message or "")


async def test_a_step_asking_above_its_projects_maximum_is_an_error_and_runs_nothing(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    definition = (
        f"steps:\n  big: {{run: 'touch {marker}', limits: {{memory: 2GiB}}}}\n"
        "  small: {run: 'true', limits: {memory: 512MiB}}\n"
    )
    runner = run_in(db, settings, tmp_path, definition, project_settings={"limits": {"memory": 1024**3}})

    pipeline = await runner.run()

    _, steps, _ = await load(db, pipeline.id)
    assert pipeline.status == PipelineStatus.ERROR.value
    assert steps["big"].status == "error" and not marker.exists()
    assert "above this project's maximum 1073741824 (project setting limits.memory)" in (
        steps["big"].error_message or ""
    )
    assert steps["small"].status == "success"
