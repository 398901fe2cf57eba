"""Removing workspaces: whole trees whatever a step did to them, and the ones left behind for too long."""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import time
from pathlib import Path

import structlog

log = structlog.stdlib.get_logger("taskmaster.workspaces.cleanup")


async def remove_tree(path: Path) -> None:
    """Delete `path` and everything under it; a missing path is fine.

    Read-only files and directories without write or search permission (as a step may leave them) are made
    writable and removed. Symbolic links are removed, never followed, so a link out of the workspace is harmless.
    """
    await asyncio.to_thread(remove_tree_sync, path)


async def remove_older_than(root: Path, *, hours: float) -> list[Path]:
    """Delete the entries directly under `root` not modified for `hours`; return those removed.

    For the reaper: a workspace's age is the mtime of its top directory, which changes when the checkout is
    made and when entries are added to or removed from its top level.
    """
    return await asyncio.to_thread(_remove_older_than_sync, root, hours)


def remove_tree_sync(path: Path) -> None:
    """`remove_tree` for code already running in a thread."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        path.unlink(missing_ok=True)
        return
    try:
        shutil.rmtree(path, onerror=_ignore_missing)
    except PermissionError:
        # Only an unprivileged owner gets here (root ignores modes): open the tree up, then delete it.
        _make_writable(path)
        shutil.rmtree(path, onerror=_ignore_missing)


def _ignore_missing(_function: object, _path: str, exc_info: tuple[type[BaseException], BaseException, object]) -> None:
    # Something else (another reaper, the step's own late process) removed it first.
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]


def _make_writable(root: Path) -> None:
    """Give the owner rwx on every directory under `root` (top-down, so that each can then be listed)."""
    _add_owner_rwx(root)
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            _add_owner_rwx(Path(dirpath) / name)


def _add_owner_rwx(path: Path) -> None:
    try:
        info = path.lstat()
        if stat.S_ISDIR(info.st_mode) and info.st_mode & stat.S_IRWXU != stat.S_IRWXU:
            path.chmod(info.st_mode | stat.S_IRWXU)
    except (FileNotFoundError, PermissionError):
        pass


def _remove_older_than_sync(root: Path, hours: float) -> list[Path]:
    cutoff = time.time() - hours * 3600
    removed: list[Path] = []
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        return removed
    for entry in entries:
        try:
            modified = entry.lstat().st_mtime
        except FileNotFoundError:
            continue
        if modified < cutoff:
            remove_tree_sync(entry)
            removed.append(entry)
            log.info("stale workspace removed", path=str(entry), age_hours=round((time.time() - modified) / 3600, 1))
    return removed
