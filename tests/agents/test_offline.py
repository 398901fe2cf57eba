"""The offline coding agent in a real git checkout: it applies a diff or file blocks carried by the task, records the
task when there is nothing to apply (without claiming an implementation), and refuses paths outside the checkout."""

from __future__ import annotations

import uuid
from pathlib import Path

from taskmaster.agents.base import CodingJob
from taskmaster.agents.offline import OfflineCodingAgent, parse_details
from tests.support.git import commit, git

DIFF = """--- a/app.txt
+++ b/app.txt
@@ -1 +1,2 @@
 hello
+world
"""


def _checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "work" / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "app.txt", "hello\n")
    return repo


def _job(checkout: Path, details: str | None, **fields: object) -> CodingJob:
    values: dict[str, object] = {
        "project_id": uuid.uuid4(), "project_name": "app", "task_number": 7, "title": "Add the login page",
        "prompt": "do it", "checkout": checkout, "branch": "taskmaster/7-add-the-login-page", "base_branch": "main",
        "details": details, "acceptance": ("a user can log in", "a wrong password is refused"),
        "test_strategy": "an end-to-end test of the form",
    }  # fmt: skip
    values.update(fields)
    return CodingJob(**values)  # type: ignore[arg-type]


async def test_a_fenced_diff_in_the_details_is_applied_with_git_apply(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    result = await OfflineCodingAgent().run(_job(checkout, f"Please apply:\n\n```diff\n{DIFF}```\n"))
    assert result.ok and result.claims_implementation
    assert (checkout / "app.txt").read_text() == "hello\nworld\n"
    assert "applied 1 diff(s)" in result.summary


async def test_details_that_are_a_whole_diff_are_applied(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    result = await OfflineCodingAgent().run(_job(checkout, DIFF))
    assert result.ok
    assert (checkout / "app.txt").read_text() == "hello\nworld\n"


async def test_file_blocks_by_info_string_and_by_path_line_become_whole_files(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    details = (
        "Two files:\n\n```python path=src/login.py\ndef login() -> bool:\n    return True\n```\n\n"
        "path: `docs/login.md`\n```markdown\n# Login\n```\n\n```python\nprint('an example, not a file')\n```\n"
    )
    result = await OfflineCodingAgent().run(_job(checkout, details))
    assert result.ok and result.claims_implementation
    assert (checkout / "src/login.py").read_text() == "def login() -> bool:\n    return True\n"
    assert (checkout / "docs/login.md").read_text() == "# Login\n"
    assert git(checkout, "status", "--porcelain").splitlines() == ["?? docs/", "?? src/"]
    assert [block.path for block in parse_details(details).files] == ["src/login.py", "docs/login.md"]


async def test_without_anything_to_apply_the_task_is_recorded_and_no_implementation_is_claimed(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    result = await OfflineCodingAgent().run(_job(checkout, "Build a login page with a form."))
    assert result.ok and result.claims_implementation is False
    record = (checkout / "docs/tasks/7-add-the-login-page.md").read_text()
    assert record.startswith("# Task #7 Add the login page\n")
    assert "No feature was implemented" in record
    assert "- a user can log in\n- a wrong password is refused" in record
    assert "an end-to-end test of the form" in record
    assert "docs/tasks/7-add-the-login-page.md" in result.summary and "implemented no feature" in result.summary


async def test_a_diff_that_climbs_out_of_the_checkout_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    evil = "--- a/../escape.txt\n+++ b/../escape.txt\n@@ -0,0 +1 @@\n+pwned\n"
    result = await OfflineCodingAgent().run(_job(checkout, f"```diff\n{evil}```\n"))
    assert not result.ok and result.failure == "refused"
    assert "'..'" in (result.error or "")
    assert not (tmp_path / "work" / "escape.txt").exists()
    assert git(checkout, "status", "--porcelain") == ""


async def test_an_absolute_file_block_path_is_refused(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    target = tmp_path / "absolute.txt"
    result = await OfflineCodingAgent().run(_job(checkout, f"```text path={target}\npwned\n```\n"))
    assert not result.ok and result.failure == "refused"
    assert "not relative" in (result.error or "")
    assert not target.exists()


async def test_a_file_block_through_a_symlink_out_of_the_checkout_is_refused(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (checkout / "linked").symlink_to(outside)
    result = await OfflineCodingAgent().run(_job(checkout, "```text path=linked/x.txt\npwned\n```\n"))
    assert not result.ok and result.failure == "refused"
    assert "symbolic link" in (result.error or "")
    assert list(outside.iterdir()) == []


async def test_a_block_into_gits_own_directory_is_refused(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    result = await OfflineCodingAgent().run(_job(checkout, "```ini path=.git/config\n[core]\n```\n"))
    assert not result.ok and result.failure == "refused"
    assert "git's own directory" in (result.error or "")


async def test_a_diff_that_does_not_apply_fails_with_gits_reason(tmp_path: Path) -> None:
    checkout = _checkout(tmp_path)
    wrong = "--- a/app.txt\n+++ b/app.txt\n@@ -1 +1 @@\n-goodbye\n+world\n"
    result = await OfflineCodingAgent().run(_job(checkout, f"```patch\n{wrong}```\n"))
    assert not result.ok and result.failure == "failed"
    assert "does not apply" in (result.error or "") and "app.txt" in (result.error or "")
    assert (checkout / "app.txt").read_text() == "hello\n"
