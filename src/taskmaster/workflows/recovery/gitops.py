"""Git work of a recovery round: the pull request's diff from the mirror, a patch checked and committed in a fresh
checkout, the commit kept in the mirror, pushed to the pull request's branch, and an agent's checkout as a patch."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path

from taskmaster.core.errors import InvalidInput, Unavailable
from taskmaster.workspaces.git_cache import token_env

_TIMEOUT = 120.0
AUTHOR_NAME = "Taskmaster"
AUTHOR_EMAIL = "taskmaster@localhost"
TRAILER = "Taskmaster-Fix"


class PatchDoesNotApply(InvalidInput):
    """`git apply --check` refused the patch at the commit under test."""


async def git(
    cwd: Path, *args: str, stdin: bytes | None = None, env: Mapping[str, str] | None = None, check: bool = True
) -> tuple[int, str, str]:
    """Run git in `cwd` without the caller's GIT_* variables; `Unavailable` with stderr when `check` and it fails."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    clean["GIT_TERMINAL_PROMPT"] = "0"
    clean.update(env or {})
    proc = await asyncio.create_subprocess_exec(
        "git", "-c", "safe.directory=*", "-C", str(cwd), *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=clean,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), _TIMEOUT)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    code = proc.returncode or 0
    text, error = out.decode(errors="replace"), err.decode(errors="replace")
    if check and code != 0:
        raise Unavailable(f"git {args[0]} failed (exit {code}): {error.strip()[-1000:]}")
    return code, text, error


async def diff_between(repo: Path, base: str | None, sha: str, *, limit: int) -> str:
    """The change under test: `base...sha` when the base is known, else the commit's own change; cut at `limit`."""
    if base:
        code, out, _ = await git(repo, "diff", "--no-color", "--no-ext-diff", f"{base}...{sha}", check=False)
        if code == 0:
            return _cut(out, limit)
    code, out, _ = await git(repo, "show", "--no-color", "--no-ext-diff", "--format=", sha, check=False)
    return _cut(out, limit) if code == 0 else ""


async def apply_patch(checkout: Path, patch: str) -> None:
    """Check, then apply `patch` in `checkout`; `PatchDoesNotApply` with git's words when it does not apply."""
    data = patch if patch.endswith("\n") else patch + "\n"
    code, _, err = await git(checkout, "apply", "--check", "--whitespace=nowarn", "-", stdin=data.encode(), check=False)
    if code != 0:
        raise PatchDoesNotApply(f"the patch does not apply at the commit under test: {err.strip()[-800:]}")
    await git(checkout, "apply", "--whitespace=nowarn", "-", stdin=data.encode())


async def commit_fix(checkout: Path, *, subject: str, body: str, pipeline_id: str) -> str:
    """Commit every change in `checkout` with the `Taskmaster-Fix: <pipeline id>` trailer; returns the sha."""
    await git(checkout, "add", "-A")
    message = f"{subject}\n\n{body.strip()}\n\n{TRAILER}: {pipeline_id}\n"
    identity = {
        "GIT_AUTHOR_NAME": AUTHOR_NAME, "GIT_AUTHOR_EMAIL": AUTHOR_EMAIL,
        "GIT_COMMITTER_NAME": AUTHOR_NAME, "GIT_COMMITTER_EMAIL": AUTHOR_EMAIL,
    }  # fmt: skip
    await git(checkout, "commit", "--no-verify", "--allow-empty", "-q", "-F", "-", stdin=message.encode(), env=identity)
    _, sha, _ = await git(checkout, "rev-parse", "HEAD")
    return sha.strip()


async def keep_in_mirror(checkout: Path, mirror: Path, sha: str, ref: str) -> None:
    """Copy the fix commit into the bare mirror under `ref`, so trial checkouts find it (and gc keeps it)."""
    await git(checkout, "push", "-q", "--no-verify", str(mirror), f"{sha}:{ref}")


async def push_branch(checkout: Path, repository: str, sha: str, branch: str, *, token: str | None) -> None:
    """Push `sha` to `branch` of `repository` (a URL, with the project's token; or a local path). A branch that
    moved meanwhile refuses it (no force)."""
    await git(
        checkout,
        "push",
        "-q",
        "--no-verify",
        repository,
        f"{sha}:refs/heads/{branch}",
        env=token_env(repository, token),
    )


async def checkout_diff(checkout: Path, *, limit: int) -> str:
    """What an agent changed in `checkout` (tracked, new and deleted files), as a patch; '' when nothing."""
    await git(checkout, "add", "-A")
    _, out, _ = await git(checkout, "diff", "--cached", "--no-color", "--no-ext-diff", "HEAD")
    await git(checkout, "reset", "-q", "--hard", "HEAD")
    await git(checkout, "clean", "-qfdx")
    if len(out.encode()) > limit:
        raise InvalidInput(f"the agent's change is larger than {limit // 1024} KiB")
    return out


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… (diff cut at {limit} characters)\n"
