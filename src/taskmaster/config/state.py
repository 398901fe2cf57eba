"""The state directory is private: the directory mode 0700, its files (databases, key file, admin token) mode 0600.

A step, an agent or another user of the machine must read none of them; see docs/architecture.md (threat model).
"""

from __future__ import annotations

import os
from pathlib import Path


def private_dir(path: Path) -> Path:
    """Make `path` (and missing parents) and narrow it to mode 0700 when it is ours and wider."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        path.chmod(0o700)
    return path


def private_file(path: Path) -> Path:
    """Make `path` an (empty, if new) file of mode 0600, or narrow an existing one of ours to it.

    For SQLite databases: SQLite opens an existing file as it is, and gives its journal files the database's mode.
    An existing file is never opened here: closing any descriptor of a database file drops every POSIX lock this
    process holds on it, including those of its open SQLite connections ("disk I/O error" for them).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        info = path.stat()
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            path.chmod(0o600)
        return path
    os.close(fd)
    return path
