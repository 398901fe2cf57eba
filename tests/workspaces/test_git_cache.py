"""The mirror cache against real repositories: clone once, fetch what is new, detached checkouts, eviction, tokens."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskmaster.workspaces import git_cache
from taskmaster.workspaces.errors import WorkspaceError
from taskmaster.workspaces.git_cache import Checkout, MirrorCache, _locked
from tests.support import commit, git, make_repo
from tests.support.git import GitHttpServer

GiB = 1024**3


def files_containing(root: Path, needle: bytes) -> list[Path]:
    hits = []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            if not path.is_symlink() and needle in path.read_bytes():
                hits.append(path)
    return hits


async def test_ensure_clones_a_bare_mirror_once_then_fetches_only_new_commits(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, shas = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)

    mirror = await cache.ensure(str(repo))
    assert mirror == cache.mirror_path(str(repo))
    assert git(mirror, "rev-parse", "--is-bare-repository") == "true"
    assert git(mirror, "rev-parse", "refs/heads/main") == shas[-1]
    first_packs = {path.name: path.stat().st_ino for path in (mirror / "objects" / "pack").iterdir()}

    new = commit(repo, "app.txt", "version 3\n")
    assert await cache.ensure(str(repo)) == mirror
    assert git(mirror, "rev-parse", "refs/heads/main") == new
    # Fetched, not cloned again: the first clone's packs are still the same files.
    after = {path.name: path.stat().st_ino for path in (mirror / "objects" / "pack").iterdir()}
    assert first_packs.items() <= after.items()
    assert "-source-" in mirror.parent.name  # a readable slug, then the URL's hash
    assert not list(mirror.parent.glob("mirror.git.tmp-*"))


async def test_a_branch_checkout_skips_its_fetch_when_one_started_after_the_work_was_requested(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    """The runs of one request share a fetch: a checkout of a branch fetches unless a fetch started at or after
    `fetched_since`, which already brought all that the request could have seen."""
    repo, shas = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    requested = time.time()
    first = await cache.checkout(str(repo), "main", tmp_path / "one", fetched_since=requested)
    assert first.sha == shas[-1]

    newer = commit(repo, "app.txt", "pushed after the request\n")
    shared = await cache.checkout(str(repo), "main", tmp_path / "two", fetched_since=requested)
    assert shared.sha == shas[-1]  # no second fetch: the first one started after the request
    later = await cache.checkout(str(repo), "main", tmp_path / "three", fetched_since=time.time())
    assert later.sha == newer  # a request made after the push fetches it
    plain = await cache.checkout(str(repo), "main", tmp_path / "four")
    assert plain.sha == newer


async def test_checkout_is_a_detached_tree_of_exactly_the_commit_with_branches_and_tags(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, shas = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)

    made = await cache.checkout(str(repo), shas[1], tmp_path / "work" / "attempt-1")

    assert made == Checkout(path=tmp_path / "work" / "attempt-1", sha=shas[1], repo=str(repo))
    assert (made.path / "app.txt").read_text() == "version 1\n"
    assert git(made.path, "rev-parse", "HEAD") == shas[1]
    assert git(made.path, "rev-parse", "--abbrev-ref", "HEAD") == "HEAD"  # detached
    assert git(made.path, "status", "--porcelain") == ""
    assert git(made.path, "rev-parse", "origin/main") == shas[-1]
    assert git(made.path, "describe", "--tags").startswith("v0.1-1-")
    assert git(made.path, "remote", "get-url", "origin") == str(repo)
    assert git(made.path, "log", "--format=%s", "-n", "1") == "commit 1"
    # The checkout's git data is its own; objects come from the mirror through alternates.
    alternates = (made.path / ".git" / "objects" / "info" / "alternates").read_text().strip()
    assert alternates == str(cache.mirror_path(str(repo)) / "objects")


async def test_checkout_of_a_branch_name_fetches_first_and_records_the_resolved_sha(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, _ = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    await cache.ensure(str(repo))
    newest = commit(repo, "app.txt", "pushed after the mirror was made\n")

    made = await cache.checkout(str(repo), "main", tmp_path / "co")

    assert made.sha == newest
    assert (made.path / "app.txt").read_text() == "pushed after the mirror was made\n"


async def test_checkout_of_a_commit_missing_from_the_mirror_fetches_then_succeeds(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, _ = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    await cache.ensure(str(repo))
    git(repo, "checkout", "-q", "-b", "feature")
    feature = commit(repo, "feature.txt", "new feature\n")

    made = await cache.checkout(str(repo), feature, tmp_path / "co")

    assert made.sha == feature
    assert (made.path / "feature.txt").read_text() == "new feature\n"


async def test_checkout_of_a_short_sha_or_a_tag_object_records_the_full_commit_sha(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, shas = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    tag_object = git(repo, "rev-parse", "refs/tags/v0.1")  # annotated: its own object, pointing at shas[0]
    assert tag_object != shas[0]

    by_short = await cache.checkout(str(repo), shas[1][:10], tmp_path / "short")
    by_tag = await cache.checkout(str(repo), tag_object, tmp_path / "tag")

    assert by_short.sha == shas[1] and git(by_short.path, "rev-parse", "HEAD") == shas[1]
    assert by_tag.sha == shas[0] and git(by_tag.path, "rev-parse", "HEAD") == shas[0]
    assert (by_tag.path / "app.txt").read_text() == "version 0\n"
    assert git(by_tag.path, "status", "--porcelain") == ""


async def test_outside_linux_git_init_makes_the_repository_and_the_checkout_is_the_same(
    tmp_path: Path, source_repo: tuple[Path, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, shas = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    monkeypatch.setattr(git_cache.sys, "platform", "darwin")

    made = await cache.checkout(str(repo), shas[1], tmp_path / "co")

    assert git(made.path, "rev-parse", "HEAD") == shas[1]
    assert git(made.path, "status", "--porcelain") == ""
    assert git(made.path, "rev-parse", "origin/main") == shas[-1]
    assert git(made.path, "remote", "get-url", "origin") == str(repo)


async def test_an_object_that_is_not_a_commit_is_refused_as_not_found(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, shas = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    blob = git(repo, "rev-parse", f"{shas[0]}:app.txt")

    with pytest.raises(WorkspaceError) as caught:
        await cache.checkout(str(repo), blob, tmp_path / "co")

    assert blob in str(caught.value) and "is not in" in str(caught.value)
    assert not (tmp_path / "co").exists()


async def test_fetching_writes_no_fetch_head(tmp_path: Path, source_repo: tuple[Path, list[str]]) -> None:
    repo, _ = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    mirror = await cache.ensure(str(repo))
    new = commit(repo, "app.txt", "fetched\n")

    await cache.ensure(str(repo))

    assert git(mirror, "rev-parse", "refs/heads/main") == new
    assert not (mirror / "FETCH_HEAD").exists()


async def test_a_fetch_into_a_mirror_with_too_many_packs_repacks_it(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, _ = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    mirror = await cache.ensure(str(repo))
    git(mirror, "config", "gc.autoDetach", "false")  # so that the repack is over when ensure returns
    for number in range(51):  # more than gc.autoPackLimit, as many small fetches would leave
        blob = subprocess.run(
            ["git", "-C", str(mirror), "hash-object", "-w", "--stdin"],
            input=f"blob {number}\n".encode(),
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(
            ["git", "-C", str(mirror), "pack-objects", "-q", str(mirror / "objects" / "pack" / "pack")],
            input=blob,
            capture_output=True,
            check=True,
        )
    packs = lambda: list((mirror / "objects" / "pack").glob("*.pack"))  # noqa: E731
    assert len(packs()) > 50
    new = commit(repo, "app.txt", "after many packs\n")

    await cache.ensure(str(repo))

    assert git(mirror, "rev-parse", "refs/heads/main") == new
    assert len(packs()) < 10
    assert git(mirror, "fsck", "--no-progress", "--no-dangling") == ""


async def test_checkout_of_an_unknown_commit_fails_as_infra_naming_repo_and_commit(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, _ = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    missing = "0123456789abcdef0123456789abcdef01234567"

    with pytest.raises(WorkspaceError) as caught:
        await cache.checkout(str(repo), missing, tmp_path / "co")

    assert caught.value.failure_reason == "infra"
    assert missing in str(caught.value) and str(repo) in str(caught.value)
    assert not (tmp_path / "co").exists() or not any((tmp_path / "co").iterdir())


async def test_a_repository_that_cannot_be_cloned_fails_with_gits_error(tmp_path: Path) -> None:
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)

    with pytest.raises(WorkspaceError) as caught:
        await cache.ensure(str(tmp_path / "no-such-repo"))

    message = str(caught.value)
    assert "git clone failed" in message and "no-such-repo" in message
    assert "does not exist" in message or "not a git repository" in message.lower()
    assert not list(cache.mirror_path(str(tmp_path / "no-such-repo")).parent.glob("mirror.git*"))


async def test_checkout_refuses_a_destination_that_is_not_empty(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, shas = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    dest = tmp_path / "co"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")

    with pytest.raises(WorkspaceError, match="not empty"):
        await cache.checkout(str(repo), shas[0], dest)

    assert (dest / "keep.txt").read_text() == "mine"


async def test_urls_with_embedded_credentials_are_refused_without_echoing_them(tmp_path: Path) -> None:
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)

    with pytest.raises(WorkspaceError) as caught:
        await cache.ensure("https://user:hunter2@example.com/org/repo.git")

    assert "hunter2" not in str(caught.value) and "example.com/org/repo.git" in str(caught.value)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


async def test_remove_deletes_the_checkout_and_its_registration(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, shas = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    made = await cache.checkout(str(repo), shas[0], tmp_path / "co")
    registry = cache.mirror_path(str(repo)).parent / "checkouts"
    assert len(list(registry.iterdir())) == 1

    await cache.remove(made.path)

    assert not made.path.exists()
    assert list(registry.iterdir()) == []
    await cache.remove(made.path)  # removing twice is harmless


async def test_evict_removes_least_recently_used_mirrors_until_under_the_cap(tmp_path: Path) -> None:
    repos = [tmp_path / name for name in ("old", "middle", "new")]
    for repo in repos:
        make_repo(repo, commits=2)
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    for repo in repos:
        await cache.ensure(str(repo))
        await asyncio.sleep(0.02)  # distinct last-use times
    total = await cache.size()
    assert total > 0

    assert await cache.evict() == []  # under the cap: nothing to do
    cache.max_bytes = total - 1  # one mirror must go: the least recently used
    assert await cache.evict() == [cache.mirror_path(str(repos[0]))]
    assert not cache.mirror_path(str(repos[0])).exists()
    assert all(cache.mirror_path(str(repo)).exists() for repo in repos[1:])

    # An evicted mirror comes back on the next use.
    assert (await cache.ensure(str(repos[0]))).exists()


async def test_evict_keeps_mirrors_with_live_checkouts_or_held_locks(tmp_path: Path) -> None:
    in_use, locked, idle = tmp_path / "in-use", tmp_path / "locked", tmp_path / "idle"
    for repo in (in_use, locked, idle):
        make_repo(repo, commits=1)
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    made = await cache.checkout(str(in_use), "main", tmp_path / "co")
    await cache.ensure(str(locked))
    await cache.ensure(str(idle))
    cache.max_bytes = 0

    lock_fd = os.open(cache.mirror_path(str(locked)).parent / "fetch.lock", os.O_RDWR)
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    try:
        removed = await cache.evict()
    finally:
        os.close(lock_fd)

    assert removed == [cache.mirror_path(str(idle))]
    assert git(made.path, "cat-file", "-t", made.sha) == "commit"  # the live checkout still reads its objects

    await cache.remove(made.path)
    assert sorted(await cache.evict()) == sorted([cache.mirror_path(str(in_use)), cache.mirror_path(str(locked))])


async def test_concurrent_callers_in_one_process_share_one_mirror(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, shas = source_repo
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)

    made = await asyncio.gather(*(cache.checkout(str(repo), "main", tmp_path / f"co{n}") for n in range(5)))

    assert {checkout.sha for checkout in made} == {shas[-1]}
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert all((checkout.path / "app.txt").read_text() == "version 2\n" for checkout in made)


_WORKER = """
import asyncio, sys
from pathlib import Path
from taskmaster.workspaces.git_cache import MirrorCache

async def main() -> None:
    cache = MirrorCache(Path(sys.argv[1]), max_bytes=1 << 30)
    made = await cache.checkout(sys.argv[2], "main", Path(sys.argv[3]))
    print(made.sha)

asyncio.run(main())
"""


async def test_several_worker_processes_calling_at_once_share_one_intact_mirror(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, shas = source_repo
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            str(tmp_path / "cache"),
            str(repo),
            str(tmp_path / f"co{n}"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for n in range(4)
    ]
    outputs = [await proc.communicate() for proc in procs]

    assert [proc.returncode for proc in procs] == [0] * 4, [err.decode()[-2000:] for _, err in outputs]
    assert {out.decode().strip().splitlines()[-1] for out, _ in outputs} == {shas[-1]}
    # structlog's default output (stdout) shows who did what: one clone, the others waited for it.
    assert sum(out.decode().count("mirror cloned") for out, _ in outputs) == 1
    entries = list((tmp_path / "cache").iterdir())
    assert len(entries) == 1
    assert sorted(path.name for path in entries[0].iterdir()) == [
        "checkouts",
        "fetch.lock",
        "fetched",
        "mirror.git",
        "use.lock",
    ]
    git(entries[0] / "mirror.git", "fsck", "--no-progress")


async def test_a_cancelled_lock_waiter_does_not_keep_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "fetch.lock"
    async with _locked(path):
        waiter = asyncio.ensure_future(_locked(path).__aenter__())
        await asyncio.sleep(0.1)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    # The abandoned waiter's thread got the lock after we released it and must have let it go.
    async with asyncio.timeout(5), _locked(path):
        pass


async def test_token_goes_to_git_only_through_its_environment_and_lands_nowhere_on_disk(
    tmp_path: Path, source_repo: tuple[Path, list[str]]
) -> None:
    repo, _ = source_repo
    token = "ghp_NEVERonDISK0123456789"
    calls = tmp_path / "git-calls.log"
    wrapper = tmp_path / "git-wrapper"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'printf "argv: %s\\n" "$*" >> {calls}\n'
        f'printf "env: %s\\n" "$GIT_CONFIG_KEY_0=$GIT_CONFIG_VALUE_0" >> {calls}\n'
        'exec git "$@"\n'
    )
    wrapper.chmod(0o755)
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB, git=str(wrapper))

    await cache.ensure(str(repo), token=token)
    commit(repo, "app.txt", "more\n")
    made = await cache.checkout(str(repo), "main", tmp_path / "co", token=token)

    header = base64.b64encode(f"x-access-token:{token}".encode())
    log = calls.read_text()
    argv_lines = [line for line in log.splitlines() if line.startswith("argv:")]
    assert any("clone --mirror" in line for line in argv_lines) and any(" fetch " in line for line in argv_lines)
    assert all(token not in line and header.decode() not in line for line in argv_lines)
    assert f"http.extraHeader=Authorization: Basic {header.decode()}" in log  # it did reach git, by environment
    calls.unlink()
    for secret in (token.encode(), header):
        assert files_containing(tmp_path / "cache", secret) == []
        assert files_containing(made.path, secret) == []


async def test_private_repository_over_http_needs_the_token_and_never_reveals_it(
    tmp_path: Path, git_http_server: GitHttpServer
) -> None:
    served = git_http_server.root / "org" / "private.git"
    source = tmp_path / "source"
    shas = make_repo(source, commits=2)
    served.parent.mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--bare", str(source), str(served))
    url = f"{git_http_server.url}/org/private.git"
    cache = MirrorCache(tmp_path / "cache", max_bytes=GiB)
    token = git_http_server.token

    with pytest.raises(WorkspaceError) as caught:
        await cache.ensure(url, token="ghp_wrongTOKEN")
    assert "ghp_wrongTOKEN" not in str(caught.value) and url in str(caught.value)

    made = await cache.checkout(url, shas[0], tmp_path / "co", token=token)

    assert made.sha == shas[0] and (made.path / "app.txt").read_text() == "version 0\n"
    assert git_http_server.expected() in git_http_server.authorizations
    assert git(cache.mirror_path(url), "config", "remote.origin.url") == url
    header = git_http_server.expected().removeprefix("Basic ").encode()
    for secret in (token.encode(), header):
        assert files_containing(tmp_path / "cache", secret) == []
        assert files_containing(made.path, secret) == []


async def test_a_new_mirror_is_stored_uncompressed_and_checkouts_read_it(tmp_path: Path) -> None:
    shas = make_repo(tmp_path / "source", commits=5)
    cache = MirrorCache(tmp_path / "cache", max_bytes=1 << 30)
    mirror = await cache.ensure(str(tmp_path / "source"))

    packs = list((mirror / "objects" / "pack").glob("*.pack"))
    made = await cache.checkout(str(tmp_path / "source"), shas[2], tmp_path / "work")

    assert git(mirror, "config", "core.compression") == "0"
    assert len(packs) == 1 and git(mirror, "count-objects", "-v").splitlines()[0] == "count: 0"
    assert git(mirror, "fsck", "--connectivity-only", "--no-progress") == ""
    assert (made.path / "app.txt").read_text() == "version 2\n"
    # Level 0: the pack holds the objects' bytes as they are (zlib "stored" blocks), so it is no smaller than them.
    assert b"version 4" in packs[0].read_bytes()


async def test_a_mirror_above_the_size_cap_keeps_gits_compression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_repo(tmp_path / "source", commits=2)
    monkeypatch.setattr(git_cache, "RECOMPRESS_MAX_PACK_BYTES", -1)
    cache = MirrorCache(tmp_path / "cache", max_bytes=1 << 30)
    mirror = await cache.ensure(f"file://{tmp_path / 'source'}")  # over the pack protocol: a pack arrives

    stored = subprocess.run(["git", "-C", str(mirror), "config", "core.compression"], capture_output=True, text=True)
    packs = list((mirror / "objects" / "pack").glob("*.pack"))
    assert stored.returncode == 1 and stored.stdout == ""  # unset: git's default compression
    assert len(packs) == 1 and b"version 1" not in packs[0].read_bytes()  # compressed
