"""Every PRD of the corpus (tests/tasks/prds/ and the shared ../shared/prd-corpus/) scored against its gold file:
every requirement found, >= 90 % of stated dependencies, no non-work section as a task, no duplicate task, and the
text's priority order kept in >= 90 % of pairs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from taskmaster.tasks.planner.formats import read_prd
from taskmaster.tasks.planner.offline import plan_prd
from tests.tasks.planner.scoring import score

ROOT = Path(__file__).resolve().parents[3]
OWN = ROOT / "tests" / "tasks" / "prds"
# shared/ sits beside the repository (beside the main checkout for a worktree one level deeper)
SHARED = next(
    (p / "shared" / "prd-corpus" for p in ROOT.parents if (p / "shared" / "prd-corpus").is_dir()),
    ROOT.parent / "shared" / "prd-corpus",
)
SUFFIXES = {".md", ".txt", ".html", ".docx", ".pdf"}


def _corpus(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix in SUFFIXES and p.with_name(_gold_name(p)).exists())


def _gold_name(path: Path) -> str:
    return path.name.rsplit(".", 1)[0] + ".gold.json"


def test_the_corpus_has_the_shapes_it_promises() -> None:
    own = _corpus(OWN)
    assert len(own) >= 12
    assert {p.suffix for p in own} >= {".md", ".txt", ".docx", ".pdf", ".html"}
    assert len(_corpus(SHARED)) >= 2, f"the shared corpus is missing at {SHARED}"


@pytest.mark.parametrize("path", _corpus(OWN) + _corpus(SHARED), ids=lambda p: p.name)
def test_prd_meets_its_gold(path: Path) -> None:
    gold = json.loads(path.with_name(_gold_name(path)).read_text())
    plan = plan_prd(read_prd(path.read_bytes(), path.name), source=path.name)
    result = score(plan.tasks, gold)
    assert result.recall == 1.0, result.line()
    assert result.edges >= 0.9, result.line()
    assert result.junk == [], result.line()
    assert result.duplicates == [], result.line()
    assert result.priority >= 0.9, result.line()


def test_the_shared_scorer_agrees_on_the_shared_corpus(tmp_path: Path) -> None:
    """The reproduction above is checked against the shared scorer itself, on its own PRDs."""
    for path in _corpus(SHARED):
        plan = plan_prd(read_prd(path.read_bytes(), path.name), source=path.name)

        def flat(tasks: list[object]) -> list[dict[str, object]]:
            return [
                {**t.model_dump(), "id": t.key, "subtasks": flat(t.subtasks)}  # type: ignore[attr-defined]
                for t in tasks
            ]

        out = tmp_path / f"{path.stem}.json"
        out.write_text(json.dumps(flat(list(plan.tasks))))
        run = subprocess.run(
            [sys.executable, str(SHARED / "score_prd.py"), str(out), str(path.with_name(_gold_name(path)))],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout + run.stderr
        assert "recall 1.00" in run.stdout
