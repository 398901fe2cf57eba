"""Workspace removal: whatever a step left behind goes, links out of the tree are not followed, old ones are reaped."""

from __future__ import annotations

import os
import time
from pathlib import Path

from taskmaster.workspaces.cleanup import remove_older_than, remove_tree


async def test_remove_tree_deletes_read_only_files_and_locked_directories(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f.txt").write_text("x")
    (root / "a" / "b" / "f.txt").chmod(0o400)
    (root / "a" / "b").chmod(0o500)
    (root / "closed").mkdir()
    (root / "closed" / "inside").write_text("y")
    (root / "closed").chmod(0o000)

    await remove_tree(root)

    assert not root.exists()


async def test_remove_tree_removes_links_without_following_them(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    root = tmp_path / "ws"
    root.mkdir()
    (root / "link-to-dir").symlink_to(outside)
    (root / "link-to-file").symlink_to(outside / "precious.txt")
    top_link = tmp_path / "top-link"
    top_link.symlink_to(outside)

    await remove_tree(root)
    await remove_tree(top_link)

    assert not root.exists() and not top_link.is_symlink()
    assert (outside / "precious.txt").read_text() == "keep me"


async def test_remove_tree_of_a_missing_path_or_a_file_is_fine(tmp_path: Path) -> None:
    single = tmp_path / "file.txt"
    single.write_text("z")

    await remove_tree(tmp_path / "never-existed")
    await remove_tree(single)

    assert not single.exists()


async def test_remove_older_than_reaps_only_stale_workspaces(tmp_path: Path) -> None:
    root = tmp_path / "workspaces"
    stale, fresh, stale_file = root / "pipeline-1", root / "pipeline-2", root / "stray.log"
    for path in (stale, fresh):
        (path / "src").mkdir(parents=True)
        (path / "src" / "main.py").write_text("print()")
    stale_file.write_text("old")
    three_days_ago = time.time() - 72 * 3600
    for path in (stale, stale_file):
        os.utime(path, (three_days_ago, three_days_ago))

    removed = await remove_older_than(root, hours=24)

    assert sorted(removed) == sorted([stale, stale_file])
    assert not stale.exists() and not stale_file.exists() and (fresh / "src" / "main.py").exists()
    assert await remove_older_than(tmp_path / "no-root", hours=1) == []
