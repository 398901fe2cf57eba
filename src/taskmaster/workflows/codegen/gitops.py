"""The git a code-generation run does in its checkout: branch, inspect the agent's change, commit, bundle, push and
delete the remote branch. The checkout is hostile after the agent ran: hooks and fsmonitor are turned off on every
call, and tokens reach git only through its environment (`workspaces.git_cache.token_env`)."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from taskmaster.core.errors import TaskmasterError
from taskmaster.core.redact import redact
from taskmaster.workspaces.git_cache import token_env

# Every call: a hostile checkout's config must not make our git run its programs.
_SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "protocol.ext.allow=never")
MAX_BUNDLE_BYTES = 64 * 1024 * 1024


class GitFailed(TaskmasterError):
    """A git command failed; the message quotes git's error (tokens masked)."""

    code = "git_failed"
    title = "git failed"


@dataclass(frozen=True, slots=True)
class Change:
    """What the agent changed, staged against the base commit."""

    paths: tuple[str, ...]
    deleted: tuple[str, ...]
    files_before: int
    files_after: int
    symlinks: tuple[tuple[str, str], ...]
    """Changed symlinks and where they point."""


class Git:
    """git in one checkout; `token` and `remote` for the commands that reach the project's repository."""

    def __init__(self, checkout: Path, *, git: str = "git", author: tuple[str, str] = ("Taskmaster", "t@localhost")):
        self.checkout = checkout
        self._git = git
        self.author = author

    async def run(self, *args: str, env: Mapping[str, str] | None = None, token: str | None = None) -> str:
        code, out, err = await self.call(*args, env=env)
        if code != 0:
            raise _failed(args[0], code, err, token)
        return out

    async def call(self, *args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
        base = {
            key: value for key, value in os.environ.items()
            if not key.startswith(("GIT_CONFIG_", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX"))
        }  # fmt: skip
        name, email = self.author
        base.update({
            "GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
            "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email, "GIT_CONFIG_NOSYSTEM": "1",
        })  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            self._git, *_SAFE, *args, cwd=self.checkout, env={**base, **(env or {})},
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    async def branch(self, name: str) -> None:
        await self.run("checkout", "-q", "-B", name)

    async def head(self) -> str:
        return (await self.run("rev-parse", "HEAD")).strip()

    async def staged_change(self, base_sha: str) -> Change:
        """Stage everything in the working tree and describe it against `base_sha`."""
        await self.run("add", "-A", "--", ".")
        status = await self.run("diff", "--cached", "--no-renames", "--name-status", "-z", base_sha)
        parts = [part for part in status.split("\0") if part]
        paths, deleted, added = [], [], 0
        for kind, path in zip(parts[0::2], parts[1::2], strict=False):
            paths.append(path)
            if kind == "D":
                deleted.append(path)
            added += kind == "A"
        before = len([p for p in (await self.run("ls-tree", "-r", "-z", "--name-only", base_sha)).split("\0") if p])
        # Without renames every staged path is added (A), deleted (D) or changed in place: no `ls-files` needed.
        after = before + added - len(deleted)
        links = []
        for path in paths:
            target = self.checkout / path
            if path not in deleted and target.is_symlink():
                links.append((path, os.readlink(target)))
        return Change(tuple(paths), tuple(deleted), before, after, tuple(links))

    async def commit(self, message: str) -> str:
        await self.run("commit", "-q", "--no-verify", "-m", message)
        return await self.head()

    async def bundle(self, branch: str, base_sha: str) -> str:
        """The commits on `branch` after `base_sha`, as a git bundle in base64 (kept in the run's journal)."""
        path = self.checkout.parent / "change.bundle"
        await self.run("bundle", "create", str(path), f"refs/heads/{branch}", f"^{base_sha}")
        data = path.read_bytes()
        path.unlink()
        if len(data) > MAX_BUNDLE_BYTES:
            raise GitFailed(f"the change is larger than {MAX_BUNDLE_BYTES // 1024**2} MiB once packed")
        return base64.b64encode(data).decode()

    async def restore(self, branch: str, bundle: str) -> None:
        """Bring the bundled branch into this checkout (a run resumed on a worker without the original)."""
        path = self.checkout.parent / "change.bundle"
        path.write_bytes(base64.b64decode(bundle))
        try:
            await self.run("fetch", "-q", "--no-tags", str(path), f"refs/heads/{branch}:refs/heads/{branch}")
        finally:
            path.unlink(missing_ok=True)

    async def remote_sha(self, remote: str, branch: str, token: str | None) -> str | None:
        out = await self.run("ls-remote", remote, f"refs/heads/{branch}", env=token_env(remote, token), token=token)
        line = out.strip().split("\n")[0] if out.strip() else ""
        return line.split()[0] if line else None

    async def push(self, remote: str, branch: str, sha: str, token: str | None) -> str:
        """Make `branch` on `remote` point at `sha`: nothing when it already does; a branch left by an earlier
        attempt of this run (another sha) is replaced, guarded by the sha seen. Returns what was done.

        A plain push first (one round trip to the remote in the usual case, a new branch); only when the remote
        refuses it is the branch's sha read, to replace it with a lease on that sha."""
        code, out, err = await self.call(
            "push", "--porcelain", remote, f"{sha}:refs/heads/{branch}", env=token_env(remote, token)
        )
        lines = out.splitlines()
        if code == 0:
            return "already there" if any(line.startswith("=\t") for line in lines) else "pushed"
        if not any(line.startswith("!\t") and ("non-fast-forward" in line or "fetch first" in line) for line in lines):
            raise _failed("push", code, err, token)
        seen = await self.remote_sha(remote, branch, token)
        if seen == sha:
            return "already there"
        args = ["push", "-q", remote, f"{sha}:refs/heads/{branch}"]
        if seen is not None:
            args.insert(2, f"--force-with-lease=refs/heads/{branch}:{seen}")
        await self.run(*args, env=token_env(remote, token), token=token)
        return "pushed" if seen is None else "replaced"

    async def delete_remote(self, remote: str, branch: str, sha: str | None, token: str | None) -> bool:
        """Delete `branch` on `remote` when it is (still) at `sha` (any sha when None); True when deleted."""
        seen = await self.remote_sha(remote, branch, token)
        if seen is None or (sha is not None and seen != sha):
            return False
        await self.run(
            "push", "-q", f"--force-with-lease=refs/heads/{branch}:{seen}", remote, "--delete", f"refs/heads/{branch}",
            env=token_env(remote, token), token=token,
        )  # fmt: skip
        return True


def _failed(command: str, code: int, err: str, token: str | None) -> GitFailed:
    masked = redact(err.strip()[-1500:], (token,) if token else (), mask="***")
    return GitFailed(f"git {command} failed (exit {code}): {masked or '(no error output)'}")


def protected_changes(paths: Sequence[str], task_text: str) -> list[str]:
    """Changed paths that configure the pipeline or CI (`.taskmaster.yml`, `.github/workflows/**`,
    `.gitlab-ci.yml`) and that the task's text does not name (by the path, its folder, or the word "CI")."""
    found = []
    asks_ci = " CI " in f" {task_text} ".replace(".", " ").replace(",", " ")
    for path in paths:
        if (
            (path == ".taskmaster.yml" and ".taskmaster.yml" not in task_text)
            or (path.startswith(".github/workflows/") and not (asks_ci or ".github/workflows" in task_text))
            or (path == ".gitlab-ci.yml" and not (asks_ci or ".gitlab-ci.yml" in task_text))
        ):
            found.append(path)
    return found


def points_outside(checkout: Path, link_path: str, target: str) -> bool:
    """Whether a symlink at `link_path` with `target` leads out of the checkout."""
    if os.path.isabs(target):
        return True
    resolved = os.path.normpath(os.path.join(os.path.dirname(link_path), target))
    return resolved == ".." or resolved.startswith("../")
