"""The review's pure parts on real diffs: parsing (new-file line numbers, renames, binary files), chunks under a
token budget with every file's coverage, anchoring by quote, and the policy's edges."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskmaster.projects.settings import ReviewSettings
from taskmaster.workflows.review.anchor import anchor, anchor_all
from taskmaster.workflows.review.chunks import DEFAULT_SKIP, estimate_tokens, plan_chunks, skip_reason
from taskmaster.workflows.review.diff import DiffError, git_diff, parse_diff
from taskmaster.workflows.review.policy import failing
from taskmaster.workflows.review.schemas import Finding
from tests.support.git import git
from tests.workflows.review.conftest import make_pr_repo

OLD = "".join(f"line {n}\n" for n in range(1, 31))


def finding(file: str = "app.py", line: int = 1, quote: str = "", **fields: object) -> Finding:
    values: dict[str, object] = {"severity": "major", "category": "bug", "message": "wrong", "confidence": 0.9}
    values.update(fields)
    return Finding(file=file, start_line=line, end_line=line, quote=quote, **values)  # type: ignore[arg-type]


async def test_a_real_diff_parses_with_new_line_numbers_renames_binaries_and_deletions(tmp_path: Path) -> None:
    changed = OLD.replace("line 10\n", "line 10\nadded after ten\n").replace("line 25\n", "changed 25\n")
    base, head = make_pr_repo(
        tmp_path / "r",
        {"app.py": OLD, "old name.txt": "same content\n" * 20, "gone.txt": "bye\n", "img.bin": b"\x00\x01"},
        {"app.py": changed, "old name.txt": None, "new näme.txt": "same content\n" * 20, "gone.txt": None,
         "img.bin": b"\x00\x02\x03", "fresh.py": "a = 1\nb = 2\n"},
    )  # fmt: skip
    files = {f.path: f for f in parse_diff(await git_diff(tmp_path / "r" / ".git", base, head))}

    assert set(files) == {"app.py", "new näme.txt", "gone.txt", "img.bin", "fresh.py"}
    assert files["app.py"].added == {11: "added after ten", 26: "changed 25"}
    assert (files["app.py"].status, files["app.py"].deletions) == ("modified", 1)
    renamed = files["new näme.txt"]
    assert (renamed.status, renamed.old_path, renamed.hunks) == ("renamed", "old name.txt", ())
    assert files["gone.txt"].status == "deleted"
    assert files["img.bin"].binary and not files["img.bin"].hunks
    assert (files["fresh.py"].status, files["fresh.py"].added) == ("added", {1: "a = 1", 2: "b = 2"})


async def test_an_unknown_commit_is_a_diff_error_naming_it(tmp_path: Path) -> None:
    base, _ = make_pr_repo(tmp_path / "r", {}, {"a.txt": "x\n"})
    with pytest.raises(DiffError, match="failed"):
        await git_diff(tmp_path / "r" / ".git", base, "0" * 40)
    with pytest.raises(DiffError, match="not a commit id"):
        await git_diff(tmp_path / "r" / ".git", base, "main; rm -rf /")


async def test_a_thousand_file_diff_is_chunked_under_the_budget_and_every_file_has_its_coverage(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "big"
    head_files: dict[str, str | bytes | None] = {
        f"src/m{n:04d}.py": f"def f{n}():\n    return {n}\n" for n in range(990)
    }
    head_files |= {f"vendor/lib{n}.js": "x = 1\n" for n in range(5)}
    head_files |= {"poetry.lock": "lock\n" * 10, "logo.png": b"\x89PNG\x00\x00", "huge.py": "y = 1\n" * 4000}
    head_files |= {"dist/app.min.js": "z\n"}
    base, head = make_pr_repo(repo, {}, head_files)
    files = parse_diff(await git_diff(repo / ".git", base, head))
    assert len(files) == 999

    plan = plan_chunks(files, budget=2_000)

    coverage = {item.path: item for item in plan.coverage}
    assert set(coverage) == {f.path for f in files}  # nothing dropped silently
    assert all(chunk.tokens <= 2_000 and estimate_tokens(chunk.text) <= 2_000 for chunk in plan.chunks)
    assert len(plan.chunks) > 10
    in_chunks = [diff.path for chunk in plan.chunks for diff in chunk.files]
    assert len(in_chunks) == len(set(in_chunks)) == 991  # 990 modules + the clipped huge.py
    assert coverage["src/m0000.py"].status == "reviewed"
    assert coverage["poetry.lock"].status == "skipped" and "*.lock" in (coverage["poetry.lock"].reason or "")
    assert coverage["vendor/lib3.js"].status == "skipped" and "vendor/**" in (coverage["vendor/lib3.js"].reason or "")
    assert (coverage["logo.png"].status, coverage["logo.png"].reason) == ("skipped", "binary file")
    assert coverage["dist/app.min.js"].status == "skipped"
    clipped = coverage["huge.py"]
    assert clipped.status == "clipped" and "of 4000 diff lines (1 of 1 hunks) reviewed" in (clipped.reason or "")


def test_skip_rules_are_the_projects_when_it_sets_them() -> None:
    assert skip_reason("a/b/yarn.lock", DEFAULT_SKIP) is not None
    assert skip_reason("src/generated/api.py", ["src/generated/**"]) == "matches review.skip pattern 'src/generated/**'"
    assert skip_reason("poetry.lock", ["src/generated/**"]) is None  # the project's list replaces the defaults
    assert ReviewSettings.model_validate({"skip": "a/**, *.snap"}).skip == ("a/**", "*.snap")


def test_a_large_file_is_clipped_to_the_hunks_that_fit_and_says_so() -> None:
    text = "".join(f"+line {n}\n" for n in range(1, 201))
    diff = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n"
    for start in (1, 300, 600):
        diff += f"@@ -{start},0 +{start},200 @@\n{text}"
    (parsed,) = parse_diff(diff)
    plan = plan_chunks([parsed], budget=2_000)
    (item,) = plan.coverage
    assert (
        item.status == "clipped"
        and item.reason is not None
        and item.reason.startswith("400 of 600 diff lines (2 of 3 hunks) reviewed")
    )
    assert [len(f.hunks) for f in plan.chunks[0].files] == [2]


def test_a_quote_anchors_to_the_changed_line_nearest_the_stated_one_and_unchanged_code_does_not_anchor() -> None:
    diff = (
        "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n"
        "@@ -1,4 +1,6 @@\n ctx = 1\n+x = compute()\n+y = x / 0\n keep = 2\n+x = compute()\n unchanged_call()\n"
    )
    (parsed,) = parse_diff(diff)
    near_five = anchor(finding(line=5, quote="x = compute()"), parsed)
    assert near_five is not None and (near_five.start_line, near_five.end_line) == (5, 5)
    two_lines = anchor(finding(line=40, quote="x = compute()\ny = x / 0"), parsed)
    assert two_lines is not None and (two_lines.start_line, two_lines.end_line) == (2, 3)
    assert anchor(finding(line=6, quote="unchanged_call()"), parsed) is None  # context only: not a changed line
    assert anchor(finding(line=1, quote="ctx = 1"), parsed) is None
    assert anchor(finding(line=3, quote=""), parsed) is not None  # no quote: the stated added line
    assert anchor(finding(line=4, quote=""), parsed) is None
    assert anchor_all([finding(file="other.py", line=2, quote="x = compute()")], [parsed])[0] == []
    anchored, loose = anchor_all([finding(line=2, quote="y = x / 0"), finding(line=6, quote="unchanged_call()"),
                                  finding(line=9, quote="y = x / 0")], [parsed])  # fmt: skip
    assert [(a.start_line, a.file) for a in anchored] == [(3, "app.py")]  # the same finding twice counts once
    assert [f.quote for f in loose] == ["unchanged_call()"]


@pytest.mark.parametrize(
    ("settings", "severity", "confidence", "fails"),
    [
        ({}, "blocker", 0.1, True),
        ({}, "major", 0.8, True),
        ({}, "major", 0.79, False),
        ({}, "minor", 1.0, False),
        ({"fail_on": "blocker"}, "major", 1.0, False),
        ({"fail_on": "minor", "min_confidence": 0.5}, "minor", 0.5, True),
        ({"fail_on": "minor"}, "nit", 1.0, False),
        ({"fail_on": "none"}, "blocker", 1.0, False),
    ],
)
def test_the_policy_fails_on_what_the_project_says(
    settings: dict[str, object], severity: str, confidence: float, fails: bool
) -> None:
    lines = failing([finding(severity=severity, confidence=confidence)], ReviewSettings.model_validate(settings))
    assert bool(lines) is fails
    if fails:
        assert lines == [f"{severity} ({confidence:.2f}) app.py:1: wrong"]


def test_an_invalid_finding_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="end_line 2 is before start_line 5"):
        Finding(file="a", start_line=5, end_line=2, severity="nit", category="x", message="m", confidence=1)
    git  # noqa: B018 (imported for the helpers' module)
