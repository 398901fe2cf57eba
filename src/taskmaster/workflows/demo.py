"""The demo: a small sample repository on the local forge, its PRD parsed into tasks, and a pipeline requested,
so a newcomer can watch Taskmaster work without an account anywhere or an API key.

The repository needs nothing but Python 3 to validate (its pipeline byte-compiles and runs unittest), so its
pipeline is green on a stock machine.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from taskmaster.config import Settings
from taskmaster.core.errors import Conflict, InvalidInput
from taskmaster.db.models import Project
from taskmaster.db.session import Database
from taskmaster.pipelines.service import create_pipeline
from taskmaster.projects.credentials import Credentials
from taskmaster.projects.schemas import ProjectCreate
from taskmaster.projects.service import create_project
from taskmaster.tasks.prd import parse_into_project
from taskmaster.workspaces.git_cache import MirrorCache

DEMO_PROJECT = "demo"

FILES: dict[str, str] = {
    "README.md": "# Notes\n\nA tiny notes library: the Taskmaster demo repository.\n",
    "notes/__init__.py": (
        '"""A tiny notes library."""\n\nfrom notes.store import NoteStore\n\n__all__ = ["NoteStore"]\n'
    ),
    "notes/store.py": (
        '"""Notes kept in memory."""\n\n\n'
        "class NoteStore:\n"
        '    """Notes by title."""\n\n'
        "    def __init__(self) -> None:\n"
        "        self._notes: dict[str, str] = {}\n\n"
        "    def add(self, title: str, text: str) -> None:\n"
        "        if not title.strip():\n"
        '            raise ValueError("a note needs a title")\n'
        "        self._notes[title] = text\n\n"
        "    def get(self, title: str) -> str:\n"
        "        return self._notes[title]\n\n"
        "    def titles(self) -> list[str]:\n"
        "        return sorted(self._notes)\n"
    ),
    "tests/__init__.py": "",
    "tests/test_store.py": (
        "import unittest\n\nfrom notes import NoteStore\n\n\n"
        "class NoteStoreTest(unittest.TestCase):\n"
        "    def test_a_note_is_kept_by_its_title(self) -> None:\n"
        "        store = NoteStore()\n"
        '        store.add("groceries", "milk")\n'
        '        self.assertEqual(store.get("groceries"), "milk")\n'
        '        self.assertEqual(store.titles(), ["groceries"])\n\n'
        "    def test_a_note_without_a_title_is_refused(self) -> None:\n"
        "        with self.assertRaises(ValueError):\n"
        '            NoteStore().add(" ", "text")\n\n\n'
        'if __name__ == "__main__":\n'
        "    unittest.main()\n"
    ),
    ".taskmaster.yml": (
        "# The demo's pipeline: Python 3 only, so it is green on any machine.\n"
        "steps:\n"
        "  compile: {run: 'python3 -m compileall -q notes tests'}\n"
        "  test: {run: 'python3 -m unittest discover -v -s tests -t .', needs: [compile]}\n"
    ),
    "docs/PRD.md": (
        "# Notes: product requirements\n\n"
        "## Context\nPeople want to keep short notes and find them again.\n\n"
        "## Requirements\n"
        "- R1: Users can add a note with a title and a text.\n"
        "- R2: Users can list their notes by title. Depends on R1.\n"
        "- R3: Users can search notes by a word in their text. Depends on R1.\n"
        "- R4: Users can export their notes as Markdown. Depends on R2.\n\n"
        "## Out of scope\n- Sharing notes with other people.\n"
    ),
}


@dataclass(frozen=True, slots=True)
class DemoResult:
    project_id: uuid.UUID
    repository: Path
    tasks: int
    pipeline_id: uuid.UUID


def _git(repo: Path, *args: str) -> None:
    git = shutil.which("git")
    if git is None:
        raise InvalidInput("git is not installed: Taskmaster needs it (e.g. `apt-get install git`)")
    identity = ("-c", "user.name=Taskmaster Demo", "-c", "user.email=demo@taskmaster.invalid")
    subprocess.run([git, *identity, *args], cwd=repo, check=True, capture_output=True, text=True)  # noqa: S603


def write_repository(path: Path) -> None:
    """The sample repository at `path` (which must not exist yet), with one commit on `main`."""
    if path.exists() and any(path.iterdir()):
        raise Conflict(f"{path} already exists and is not empty: remove it or choose another directory")
    for name, text in FILES.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "add", ".")
    _git(path, "commit", "-q", "-m", "Notes: a tiny library with its tests and pipeline")


async def create_demo(
    settings: Settings,
    db: Database,
    *,
    mirror: MirrorCache,
    credentials: Credentials,
    directory: Path | None = None,
    actor: str,
) -> DemoResult:
    """Make the repository, the `demo` project on the local forge, its tasks, and a pending pipeline for `main`."""
    repository = (directory or settings.state_dir / "demo" / "notes").absolute()
    async with db.autocommit_session() as session:
        if await session.scalar(select(Project.id).where(Project.name == DEMO_PROJECT)) is not None:
            raise Conflict(f"a project named {DEMO_PROJECT!r} already exists: the demo was made before")
    try:
        await asyncio.to_thread(write_repository, repository)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise InvalidInput(f"cannot make the demo repository at {repository}: {exc}") from None
    async with db.transaction() as session:
        project = await create_project(
            session,
            spec=ProjectCreate(name=DEMO_PROJECT, repository=str(repository), forge="local", default_branch="main"),
            box=credentials.box,
            actor=actor,
        )
        project_id = project.id
    parsed = await parse_into_project(db, project_id, FILES["docs/PRD.md"], source="docs/PRD.md", actor=actor)
    async with db.transaction() as session:
        project = await session.get_one(Project, project_id)
        pipeline = await create_pipeline(
            session, project, ref="main", trigger_event="demo", mirror=mirror, credentials=credentials, actor=actor
        )
        pipeline_id = pipeline.id
    return DemoResult(project_id, repository, parsed.imported.created, pipeline_id)
