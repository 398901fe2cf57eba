"""Checkout cost: a warm checkout from the mirror cache against a fresh `git clone`, measured in the same run.

  repository   built with `git fast-import`: N commits over a tree of F source files (about 2 KB each); every commit
               edits a few lines in 3 files and every 10th adds a file, so history outweighs the tree as in real
               projects; then `git repack -ad`, as a forge keeps it
  baseline     `git clone file://<repo>`: the pack protocol, as from a remote (a plain path would hardlink the
               objects and skip the transfer), then the working tree
  warm         one new commit is pushed to the repository, then `MirrorCache.ensure` (an incremental fetch) and
               `MirrorCache.checkout` of that commit, with the mirror already cloned (and recompressed: see
               `MirrorCache._recompress`) earlier
  for reference, not part of the goal: a checkout of a commit already in the mirror (what each step of a
               pipeline does after the run's first fetch), and a clone of a plain path, which hardlinks the objects
               and so costs about what writing the working tree does, the floor of any checkout
Goal (workspaces issue): warm checkout at least 10x faster than a fresh clone. Prints figures, asserts nothing.

Run: ./dev python bench/checkout.py [--commits 3000] [--files 1500] [--runs 3] [--dir /dev/shm]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from taskmaster.workspaces.git_cache import MirrorCache

WORDS = [
    "def",
    "return",
    "self",
    "value",
    "result",
    "config",
    "item",
    "index",
    "async",
    "await",
    "import",
    "from",
    "class",
    "None",
    "True",
    "False",
    "for",
    "in",
    "if",
    "else",
    "elif",
    "while",
    "try",
    "except",
    "raise",
    "with",
    "as",
    "yield",
    "lambda",
    "pass",
    "list",
    "dict",
    "str",
    "int",
    "path",
    "name",
    "data",
    "error",
    "status",
    "step",
]


def source_file(rng: random.Random, lines: int = 60) -> list[str]:
    return [
        "    " * rng.randint(0, 3) + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))) for _ in range(lines)
    ]


def build_repository(path: Path, commits: int, files: int, seed: int = 5) -> None:
    rng = random.Random(seed)
    tree = {f"src/pkg{n % 40}/module{n}.py": source_file(rng) for n in range(files)}
    stream: list[bytes] = []

    def blob(path: str) -> None:
        content = ("\n".join(tree[path]) + "\n").encode()
        stream.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(content), content))

    for number in range(commits):
        message = f"commit {number}".encode()
        stream.append(b"commit refs/heads/main\n")
        stream.append(b"committer Bench <bench@example.com> %d +0000\n" % (1_700_000_000 + number * 60))
        stream.append(b"data %d\n%s\n" % (len(message), message))
        if number == 0:
            changed = list(tree)
        else:
            changed = rng.sample(sorted(tree), 3)
            for name in changed:
                lines = tree[name]
                for _ in range(rng.randint(1, 4)):
                    lines[rng.randrange(len(lines))] = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
            if number % 10 == 0:
                added = f"src/pkg{number % 40}/added{number}.py"
                tree[added] = source_file(rng)
                changed.append(added)
        for name in changed:
            blob(name)
        stream.append(b"\n")
    subprocess.run(["git", "init", "--quiet", "-b", "main", str(path)], check=True)
    subprocess.run(["git", "fast-import", "--quiet"], input=b"".join(stream), cwd=path, check=True)
    subprocess.run(["git", "repack", "-adq"], cwd=path, check=True)
    subprocess.run(["git", "checkout", "--quiet", "main"], cwd=path, check=True)


def add_commit(repo: Path, number: int) -> str:
    (repo / "CHANGELOG.md").write_text(f"change {number}\n")
    subprocess.run(["git", "add", "CHANGELOG.md"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.com", "commit", "-qm", f"push {number}"],
        cwd=repo,
        check=True,
    )
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True, text=True).stdout


def settle() -> None:
    """Flush dirty pages and deletions first, so that one measurement's write-back does not land in the next."""
    os.sync()
    time.sleep(0.2)


def fresh_clone(url: str, dest: Path) -> float:
    settle()
    started = time.perf_counter()
    subprocess.run(["git", "clone", "--quiet", url, str(dest)], check=True)
    took = time.perf_counter() - started
    shutil.rmtree(dest)
    return took


async def warm_checkout(cache: MirrorCache, url: str, sha: str, dest: Path, *, fetch: bool = True) -> float:
    settle()
    started = time.perf_counter()
    if fetch:
        await cache.ensure(url)
    made = await cache.checkout(url, sha, dest)
    took = time.perf_counter() - started
    assert made.sha == sha
    await cache.remove(dest)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=3000)
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where to build (default: temp dir; /dev/shm leaves the disk out)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="taskmaster-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        repo = root / "origin"
        started = time.perf_counter()
        build_repository(repo, args.commits, args.files)
        pack = sum(path.stat().st_size for path in (repo / ".git" / "objects" / "pack").glob("*.pack"))
        tree = int(subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True).stdout.count("\n"))
        print(
            f"repository: {args.commits} commits, {tree} files in the tree, pack {pack / 2**20:.1f} MiB "
            f"(built in {time.perf_counter() - started:.1f} s)"
        )
        url = f"file://{repo}"

        cache = MirrorCache(root / "cache", max_bytes=1 << 34)

        started = time.perf_counter()
        asyncio.run(cache.ensure(url))
        cold = time.perf_counter() - started
        clones, local, warm, present = [], [], [], []
        for number in range(args.runs):  # interleaved, so that a busy moment on the machine hits both
            sha = add_commit(repo, number).strip()
            clones.append(fresh_clone(url, root / "clone"))
            local.append(fresh_clone(str(repo), root / "local"))
            warm.append(asyncio.run(warm_checkout(cache, url, sha, root / "work" / f"attempt-{number}")))
            again = root / "work" / f"again-{number}"
            present.append(asyncio.run(warm_checkout(cache, url, sha, again, fetch=False)))

        baseline, measured = statistics.median(clones), statistics.median(warm)
        print(f"  {'':<44} {'median':>8}     {'best':>8}")
        rows = [
            ("fresh git clone (file://, baseline)", clones),
            ("  for reference: clone of a path (hardlinks)", local),
            ("warm: ensure + checkout of a new commit", warm),
            ("  for reference: checkout, no fetch needed", present),
        ]
        for name, samples in rows:
            print(f"  {name:<44} {statistics.median(samples) * 1000:8.1f} ms  {min(samples) * 1000:8.1f} ms")
        print(f"  {'  for reference: first ensure (mirror clone)':<44} {cold * 1000:8.1f} ms")
        print(
            f"  warm checkout vs fresh clone: {baseline / measured:.1f}x faster (medians), "
            f"{min(clones) / min(warm):.1f}x (best of each)  (goal >= 10x)"
        )
        print(f"  samples (ms): clone {[round(s * 1000) for s in clones]}, warm {[round(s * 1000) for s in warm]}")


if __name__ == "__main__":
    main()
