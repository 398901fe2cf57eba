"""The git side of the local forge: branches, merges and files of a local repository (bare or with a working tree).

A merge never goes through a working tree of its own: `git merge-tree --write-tree` merges in the object store,
`commit-tree` makes the commit and `update-ref` moves the base branch only if it is still where the merge started.
When the base branch is checked out in a working tree, that tree is brought along as `git push` with
`receive.denyCurrentBranch=updateInstead` would: only if the merge touches none of its uncommitted changes.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from taskmaster.forges.base import ForgeConflict, ForgeNotFound, ForgeRejected

FORGE = "local"
_ZERO = "0" * 40
_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "LC_ALL": "C",
}


@dataclass(frozen=True)
class Identity:
    """Who a merge commit is by (author and committer)."""

    name: str = "Taskmaster"
    email: str = "taskmaster@localhost"


@dataclass(frozen=True)
class GitResult:
    code: int
    out: str
    err: str


async def run_git(repo: str | Path, *args: str, env: dict[str, str] | None = None, cwd: bool = False) -> GitResult:
    """Run git on `repo` (with `-C`, or in it with `cwd`) and return its exit code and output; never raises for a
    non-zero exit."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    argv = ["git", *args] if cwd else ["git", "-C", str(repo), *args]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=str(repo) if cwd else None,
        env={**base_env, **_ENV, **(env or {})},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return GitResult(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace").strip())


async def check_repository(repo: str) -> None:
    """`ForgeNotFound` unless `repo` is a git repository on this machine."""
    if not await asyncio.to_thread(Path(repo).is_dir):
        raise ForgeNotFound(f"repository {repo} does not exist on this machine", forge=FORGE)
    done = await run_git(repo, "rev-parse", "--git-dir")
    if done.code != 0:
        raise ForgeNotFound(f"{repo} is not a git repository: {done.err}", forge=FORGE)


async def check_branch_name(repo: str, name: str) -> None:
    """`ForgeRejected` for a name git does not accept as a branch."""
    if not name or name.startswith("-") or (await run_git(repo, "check-ref-format", f"refs/heads/{name}")).code:
        raise ForgeRejected(f"{name!r} is not a valid branch name", forge=FORGE)


async def branch_sha(repo: str, name: str) -> str | None:
    """The commit branch `name` points at, or None when there is no such branch."""
    done = await run_git(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{name}^{{commit}}")
    return done.out.strip() if done.code == 0 and done.out.strip() else None


async def branch_heads(repo: str, names: Collection[str]) -> dict[str, str]:
    """The commit each of the branches `names` points at, read with one git process; a branch that does not exist
    (or points at no commit) is left out. `ForgeNotFound` when `repo` is not a git repository on this machine."""
    if not names:
        return {}
    # Ref names cannot hold glob characters, so each pattern matches its branch and, past a slash, branches under
    # it (`a` matches `a/b`): only exact names are kept.
    done = await run_git(
        repo, "for-each-ref", "--format=%(objectname) %(objecttype) %(refname)", *(f"refs/heads/{n}" for n in names)
    )
    if done.code != 0:
        await check_repository(repo)
        raise ForgeNotFound(f"the branches of {repo} cannot be read: {done.err}", forge=FORGE)
    wanted = {f"refs/heads/{name}": name for name in names}
    heads: dict[str, str] = {}
    for line in done.out.splitlines():
        sha, kind, ref = line.split(" ", 2)
        if kind == "commit" and ref in wanted:
            heads[wanted[ref]] = sha
    return heads


async def require_branch(repo: str, name: str) -> str:
    """The commit of branch `name`; `ForgeNotFound` naming the branch and the repository when it does not exist."""
    await check_branch_name(repo, name)
    sha = await branch_sha(repo, name)
    if sha is None:
        raise ForgeNotFound(f"branch {name!r} does not exist in {repo}", forge=FORGE)
    return sha


async def resolve_commit(repo: str, ref: str) -> str | None:
    """The commit `ref` (a sha, branch or tag) names, or None."""
    if ref.startswith("-"):
        return None
    done = await run_git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    return done.out.strip() if done.code == 0 and done.out.strip() else None


async def create_branch(repo: str, name: str, sha: str) -> None:
    """Make branch `name` at commit `sha`; `ForgeConflict` when it exists, `ForgeNotFound` for an unknown commit."""
    await check_branch_name(repo, name)
    commit = await resolve_commit(repo, sha)
    if commit is None:
        raise ForgeNotFound(f"commit {sha!r} does not exist in {repo}", forge=FORGE)
    # The zero old value makes the update refuse a branch that exists, atomically.
    done = await run_git(repo, "update-ref", "-m", "taskmaster: create branch", f"refs/heads/{name}", commit, _ZERO)
    if done.code != 0:
        raise ForgeConflict(f"branch {name!r} already exists in {repo}", forge=FORGE)


async def is_ancestor(repo: str, ancestor: str, descendant: str) -> bool:
    return (await run_git(repo, "merge-base", "--is-ancestor", ancestor, descendant)).code == 0


async def read_file(repo: str, path: str, ref: str) -> bytes | None:
    """The bytes of `path` at `ref`, or None when the ref or the file does not exist."""
    commit = await resolve_commit(repo, ref)
    if commit is None:
        return None
    proc = await asyncio.create_subprocess_exec(
        "git", "-C", repo, "cat-file", "blob", f"{commit}:{path.lstrip('/')}",
        env={**{k: v for k, v in os.environ.items() if not k.startswith("GIT_")}, **_ENV},
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return out if proc.returncode == 0 else None


async def _worktree_of(repo: str, branch: str) -> str | None:
    """The working tree that has `branch` checked out, if any (the main one or a linked one)."""
    done = await run_git(repo, "worktree", "list", "--porcelain")
    if done.code != 0:
        return None
    path: str | None = None
    bare = False
    for line in done.out.splitlines():
        if line.startswith("worktree "):
            path, bare = line[len("worktree ") :], False
        elif line == "bare":
            bare = True
        elif line == f"branch refs/heads/{branch}" and path is not None and not bare:
            return path
    return None


async def merge(
    repo: str,
    *,
    base: str,
    head: str,
    expected_head: str | None,
    message: str,
    squash: bool = False,
    identity: Identity = Identity(),
) -> tuple[str, str]:
    """Merge branch `head` into branch `base`; return (the base's commit before, the merge commit).

    `ForgeConflict` (nothing changed) when the branches conflict (the files named), when `head` is no longer at
    `expected_head`, when `base` moved during the merge, or when `base` is checked out in a working tree whose
    uncommitted changes the merge would overwrite. When `head` is already contained in `base`, nothing is made and
    the merge commit is the base's commit.
    """
    base_sha = await require_branch(repo, base)
    head_sha = await require_branch(repo, head)
    if expected_head is not None and head_sha != expected_head:
        raise ForgeConflict(
            f"branch {head!r} is at {head_sha[:12]}, not at {expected_head[:12]}: the head moved", forge=FORGE
        )
    if await is_ancestor(repo, head_sha, base_sha):
        return base_sha, base_sha
    tree = await _merged_tree(repo, base, head, base_sha, head_sha)
    env = {
        "GIT_AUTHOR_NAME": identity.name, "GIT_AUTHOR_EMAIL": identity.email,
        "GIT_COMMITTER_NAME": identity.name, "GIT_COMMITTER_EMAIL": identity.email,
    }  # fmt: skip
    parents = ["-p", base_sha] if squash else ["-p", base_sha, "-p", head_sha]
    made = await run_git(repo, "commit-tree", tree, *parents, "-m", message, env=env)
    if made.code != 0:
        raise ForgeConflict(f"the merge commit could not be made: {made.err}", forge=FORGE)
    commit = made.out.strip()
    worktree = await _worktree_of(repo, base)
    if worktree is not None:
        # Dry run first: refuse before anything moves when the checkout's own changes are in the way.
        check = await run_git(worktree, "read-tree", "-n", "-m", "-u", base_sha, commit, cwd=True)
        if check.code != 0:
            raise ForgeConflict(
                f"branch {base!r} is checked out in {worktree} with uncommitted changes the merge would overwrite "
                f"({_first_line(check.err)}); commit or stash them and merge again",
                forge=FORGE,
            )
    moved = await run_git(repo, "update-ref", "-m", f"taskmaster: {message.splitlines()[0]}", f"refs/heads/{base}",
                          commit, base_sha)  # fmt: skip
    if moved.code != 0:
        raise ForgeConflict(f"branch {base!r} moved while merging; merge again", forge=FORGE)
    if worktree is not None:
        await run_git(worktree, "read-tree", "-m", "-u", base_sha, commit, cwd=True)
    return base_sha, commit


async def _merged_tree(repo: str, base: str, head: str, base_sha: str, head_sha: str) -> str:
    done = await run_git(repo, "merge-tree", "--write-tree", "--name-only", "--no-messages", base_sha, head_sha)
    lines = done.out.splitlines()
    if done.code == 0 and lines:
        return lines[0].strip()
    if done.code == 1 and lines:
        files = sorted({line for line in lines[1:] if line.strip()})
        raise ForgeConflict(
            f"merging {head!r} into {base!r} conflicts in {len(files)} file(s): {', '.join(files)}",
            forge=FORGE, files=files,
        )  # fmt: skip
    raise ForgeConflict(f"git could not merge {head!r} into {base!r}: {done.err}", forge=FORGE)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "git refused"
