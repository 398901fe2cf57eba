"""A code-generation world on loopback: a bare git repository as the project's remote, a project on the fake GitHub
(real githubkit against it) or, in `gitlab_world`, on the fake GitLab (the real GitLab client), tasks, and the
`codegen` workflow kind on real mirrors and checkouts."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from taskmaster.agents.base import AgentKind, AgentResult, CodingJob, StartedCallback
from taskmaster.config import Settings
from taskmaster.db.models import Project, PullRequest, Task, WorkflowRun
from taskmaster.db.session import Database
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.forges import ForgeFactory
from taskmaster.secrets.box import SecretBox, new_key
from taskmaster.tasks import service as tasks
from taskmaster.tasks.schemas import TaskCreate
from taskmaster.workflows import service as runs
from taskmaster.workflows.base import RunResult
from taskmaster.workflows.codegen import service as codegen
from taskmaster.workflows.codegen.agents import AgentRegistry, default_agents
from taskmaster.workflows.codegen.run import CodegenWorkflow
from taskmaster.workflows.codegen.schemas import CodegenRequest
from taskmaster.workspaces.git_cache import MirrorCache
from tests.forges.fakes import github as fake_github
from tests.forges.fakes import gitlab as fake_gitlab
from tests.forges.fakes.github import FakeGitHub, serve_github
from tests.forges.fakes.gitlab import FakeGitLab, serve_gitlab
from tests.support.git import commit, git


@pytest.fixture(scope="module")
def _github_server() -> Iterator[tuple[str, FakeGitHub]]:
    with serve_github() as server:
        yield server


@pytest.fixture
def github(_github_server: tuple[str, FakeGitHub]) -> tuple[str, FakeGitHub]:
    _github_server[1].reset()
    return _github_server


@pytest.fixture(scope="module")
def _gitlab_server() -> Iterator[tuple[str, FakeGitLab]]:
    with serve_gitlab() as server:
        yield server


@pytest.fixture
def gitlab(_gitlab_server: tuple[str, FakeGitLab]) -> tuple[str, FakeGitLab]:
    _gitlab_server[1].reset()
    return _gitlab_server


Edit = Any
"""What a scripted agent does in its checkout: a function of the checkout path."""


class ScriptedAgent:
    """A `CodingAgent` whose behaviour a test gives: it really edits files in the checkout (`edit(checkout)`)."""

    def __init__(self, edit: Edit, *, result: AgentResult | None = None) -> None:
        self.edit = edit
        self.result = result or AgentResult(ok=True, summary="scripted change", input_tokens=1200, output_tokens=300,
                                            cost_usd=0.0123)  # fmt: skip
        self.jobs: list[CodingJob] = []

    @property
    def kind(self) -> AgentKind:
        return "agentapi"

    @property
    def label(self) -> str:
        return "agentapi:scripted"

    async def run(self, job: CodingJob, *, on_started: StartedCallback | None = None) -> AgentResult:
        self.jobs.append(job)
        self.edit(job.checkout)
        return self.result

    async def aclose(self) -> None:
        return None


@dataclass
class World:
    settings: Settings
    db: Database
    remote: Path
    project: Project
    fake: FakeGitHub | FakeGitLab
    agents: AgentRegistry
    workflow: CodegenWorkflow
    tasks: dict[int, uuid.UUID] = field(default_factory=dict)

    def use_agent(self, agent: ScriptedAgent) -> None:
        self.agents.register("agentapi", lambda project, choice: agent)

    async def add_task(self, title: str, *, depends_on: list[int] = (), **fields: Any) -> int:  # type: ignore[assignment]
        async with self.db.transaction() as session:
            project = await tasks.lock_project(session, self.project.id)
            spec = TaskCreate(title=title, dependencies=[self.tasks[n] for n in depends_on], **fields)
            task = await tasks.create_task(session, project=project, spec=spec)
            self.tasks[task.number] = task.id
            return task.number

    async def start(self, request: CodegenRequest) -> list[uuid.UUID]:
        async with self.db.transaction() as session:
            started = await codegen.start(session, self.project.id, request, actor="tester", agents=self.agents)
        return [run.id for run in started.runs]

    async def run_next(self, worker: str = "w1") -> RunResult:
        claimed = await runs.claim_next(self.db, worker, kinds=["codegen"])
        assert claimed is not None, "no codegen run to claim"
        outcome = await self.workflow.run(self.db, claimed)
        assert await runs.finish(self.db, claimed.run_id, worker, outcome)
        return outcome

    async def task(self, number: int) -> Task:
        async with self.db.session() as session:
            return await session.get_one(Task, self.tasks[number], populate_existing=True)

    async def pull_rows(self) -> list[PullRequest]:
        async with self.db.session() as session:
            return list((await session.scalars(select(PullRequest))).all())

    async def run_row(self, run_id: uuid.UUID) -> WorkflowRun:
        async with self.db.session() as session:
            return await session.get_one(WorkflowRun, run_id, populate_existing=True)

    def remote_branches(self) -> dict[str, str]:
        out = git(self.remote, "for-each-ref", "--format=%(refname:short) %(objectname)", "refs/heads")
        return dict(line.split() for line in out.splitlines())

    def pulls(self) -> list[dict[str, Any]]:
        """The pull requests (GitLab: merge requests) the fake forge holds."""
        if isinstance(self.fake, FakeGitLab):
            return self.fake.state.merge_requests
        return self.fake.state.pulls


def make_remote(tmp_path: Path) -> Path:
    """A bare repository with one commit on main (a README and a pipeline file), as a forge would hold it."""
    source = tmp_path / "source"
    source.mkdir()
    git(source, "init", "-q", "-b", "main")
    commit(source, "README.md", "# App\n")
    commit(source, "AGENTS.md", "Run the tests with `make test`.\n")
    commit(source, ".taskmaster.yml", "steps:\n  test: {run: 'true'}\n")
    commit(source, "src/app.py", "print('app')\n")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(remote)], check=True)
    return remote


GITLAB_PROJECT_ID = 7
"""The fake GitLab's id of the world's project `acme/api`."""


@pytest.fixture
async def world(settings: Settings, db: Database, github: tuple[str, FakeGitHub], tmp_path: Path) -> World:
    url, fake = github
    return await make_world(settings, db, tmp_path, "github", url, fake, fake_github.PERSONAL_TOKEN)


@pytest.fixture
async def gitlab_world(settings: Settings, db: Database, gitlab: tuple[str, FakeGitLab], tmp_path: Path) -> World:
    """The world with its project on the fake GitLab, as project `acme/api`."""
    url, fake = gitlab
    fake.state.projects["acme/api"] = GITLAB_PROJECT_ID
    return await make_world(settings, db, tmp_path, "gitlab", url, fake, fake_gitlab.TOKEN)


async def make_world(
    settings: Settings, db: Database, tmp_path: Path, forge: str, url: str, fake: FakeGitHub | FakeGitLab, token: str
) -> World:
    """A project `acme/api` on `forge` (its API at `url`, reached with `token`) whose repository is a bare one."""
    remote = make_remote(tmp_path)
    box = SecretBox([new_key()])
    credentials = Credentials(box)
    async with db.transaction() as session:
        project = Project(
            name=f"app-{uuid.uuid4().hex[:6]}", repository=str(remote), forge=forge, owner="acme", repo_name="api",
            default_branch="main", forge_token=box.encrypt(token), settings={"forge_api_url": url},
        )  # fmt: skip
        session.add(project)
    agents = default_agents()
    workflow = CodegenWorkflow(
        settings, mirror=MirrorCache.from_settings(settings), credentials=credentials,
        forges=ForgeFactory(settings, credentials), agents=agents,
    )  # fmt: skip
    return World(settings, db, remote, project, fake, agents, workflow)


class SlowAgent(ScriptedAgent):
    """A scripted agent that takes `seconds` and counts how many of its runs overlap."""

    def __init__(self, seconds: float) -> None:
        super().__init__(lambda checkout: None)
        self.seconds = seconds
        self.running = 0
        self.most = 0

    async def run(self, job: CodingJob, *, on_started: StartedCallback | None = None) -> AgentResult:
        self.jobs.append(job)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.seconds)
            (job.checkout / f"task-{job.task_number}.txt").write_text("done\n")
        finally:
            self.running -= 1
        return self.result
