"""Tokens sent to review one large diff (>= 300 changed files): Taskmaster's reviewer against pr-agent, both pointed
at the same fake OpenAI-compatible server in the same run, with the changed files each one covered.

  ours       `workflows.review`: the diff chunked under `review.max_tokens_per_chunk`, every chunk sent
  pr-agent   the `pr-agent` package (in its own venv under the cache dir), `/review` with its local git provider
Tokens are counted by the fake server the same way for both (characters of the messages / 4), so the ratio is
fair whatever tokenizer either side uses; a file counts as covered when its diff was in a request.
Goal (issue 14): every changed file covered, with no more tokens per covered file than pr-agent. The lock file
the diff also changes is skipped by the default `review.skip` rules, and named as skipped in the coverage list.
Measured (320 changed modules + a lock file): ours 9 requests, ~99k tokens, 320 files covered (309 tokens per
file); pr-agent 1 request, ~27k tokens, 14 files covered (1,928 per file): ratio 0.16.

Run: ./dev python bench/review.py [--files 320] [--cache ~/.cache/taskmaster-bench/review]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

PR_AGENT = "pr-agent==0.49.0"
PR_AGENT_PYTHON = "3.12"
KEY = "sk-bench-0000000000000000"
GIT_ENV = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@example.com", "GIT_CONFIG_NOSYSTEM": "1"}  # fmt: skip
PR_AGENT_REVIEW = """```yaml
review:
  estimated_effort_to_review_[1-5]: |
    2
  relevant_tests: |
    No
  key_issues_to_review: []
  security_concerns: |
    No
```"""


@dataclass
class Seen:
    """What the fake server was sent by one client."""

    requests: int = 0
    chars: int = 0
    prompts: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return (self.chars + 3) // 4


class FakeModel:
    def __init__(self) -> None:
        self.by_client: dict[str, Seen] = {}
        self.lock = threading.Lock()

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def completions(request: Request) -> JSONResponse:
            body = await request.json()
            text = "".join(
                m["content"] if isinstance(m["content"], str) else "".join(p.get("text", "") for p in m["content"])
                for m in body.get("messages", [])
            )
            ours = "response_format" in body
            with self.lock:
                seen = self.by_client.setdefault("ours" if ours else "pr-agent", Seen())
                seen.requests += 1
                seen.chars += len(text)
                seen.prompts.append(text)
            content = (
                json.dumps({"summary": "ok", "findings": [], "meets_acceptance": None}) if ours else PR_AGENT_REVIEW
            )
            return JSONResponse({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                             "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": (len(text) + 3) // 4, "completion_tokens": 20,
                          "total_tokens": (len(text) + 3) // 4 + 20},
            })  # fmt: skip

        return app


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(5)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr}")
    return done.stdout.strip()


def module(rng: random.Random, number: int, functions: int) -> str:
    parts = [f'"""Module {number}."""\n\nimport os\n']
    for index in range(functions):
        parts.append(
            f"\n\ndef handler_{number}_{index}(request, limit={rng.randint(1, 99)}):\n"
            f'    """Handle request kind {index}."""\n'
            f"    values = [item for item in request.items if item.size < limit]\n"
            f"    if not values:\n        return None\n"
            f"    total = sum(v.size for v in values)\n"
            f"    return {{'count': len(values), 'total': total, 'path': os.path.join('data', str({index}))}}\n"
        )
    return "".join(parts)


def make_repo(root: Path, files: int, seed: int = 14) -> Path:
    """A repository whose `feature` branch changes `files` files of varied size against `main` (a few lock
    files and vendored files among them, as real PRs have)."""
    rng = random.Random(seed)
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for number in range(files):
        path = repo / f"src/pkg{number % 12}/mod_{number:04d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(module(rng, number, rng.randint(2, 6)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "checkout", "-q", "-b", "feature")
    for number in range(files):
        path = repo / f"src/pkg{number % 12}/mod_{number:04d}.py"
        text = path.read_text()
        # a change per file: some small edits, some whole new functions, a few large rewrites
        if number % 10 == 0:
            text = module(rng, number + 10_000, rng.randint(8, 20))
        else:
            text = text.replace("if not values:", "if not values:  # nothing to do", 1)
            text += f"\n\ndef added_{number}(x):\n    return x * {number}\n"
        path.write_text(text)
    (repo / "poetry.lock").write_text("".join(f'[[package]]\nname = "p{n}"\nversion = "1.{n}"\n' for n in range(400)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "feature")
    return repo


async def ours(repo: Path, url: str, state: Path) -> tuple[int, int]:
    """Review with Taskmaster's `openai` reviewer; (changed files, files covered)."""
    from pydantic import SecretStr

    from taskmaster.config import load_settings
    from taskmaster.config.settings import LlmSettings
    from taskmaster.db.base import Base
    from taskmaster.db.models import Project, PullRequest
    from taskmaster.db.session import Database
    from taskmaster.projects.credentials import Credentials
    from taskmaster.workflows.review.service import ReviewServices, ReviewTarget, review
    from taskmaster.workspaces.git_cache import MirrorCache

    settings = load_settings({"TASKMASTER_HOME": str(state)}, config_file=None)
    settings = settings.model_copy(update={"llm": LlmSettings(openai_api_key=SecretStr(KEY), openai_base_url=url)})
    db = Database.from_settings(settings)
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        async with db.transaction() as session:
            project = Project(name="bench", repository=str(repo), forge="local",
                              settings={"review": {"reviewer": "openai"}})  # fmt: skip
            session.add(project)
            await session.flush()
            pr = PullRequest(project_id=project.id, number=1, title="Bench", head_ref="feature",
                             head_sha=git(repo, "rev-parse", "feature"), base_ref="main",
                             base_sha=git(repo, "rev-parse", "main"))  # fmt: skip
            session.add(pr)
            await session.flush()
            target = ReviewTarget(project_id=project.id, sha=pr.head_sha, pull_request_id=pr.id)
        services = ReviewServices(db, settings, MirrorCache(state / "mirrors", max_bytes=1 << 32),
                                  Credentials.from_settings(settings))  # fmt: skip

        async def quiet(_: str) -> None:
            return None

        result = await review(services, target, quiet)
        assert result.report is not None, result.message
        counts = result.report.counts()
        return len(result.report.coverage), counts["reviewed"] + counts["clipped"]
    finally:
        await db.dispose()


def pr_agent_python(cache: Path) -> Path:
    """pr-agent's own venv under the cache dir (made once)."""
    venv = cache / "pr-agent-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        base = subprocess.run(["sh", "-c", f"command -v python{PR_AGENT_PYTHON}"], capture_output=True, text=True)
        interpreter = base.stdout.strip() or sys.executable
        subprocess.run([interpreter, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PR_AGENT], check=True)
    return python


def pr_agent(repo: Path, url: str, python: Path, out: Path) -> str:
    env = {
        "PATH": os.environ["PATH"], "HOME": str(out), **GIT_ENV,
        "CONFIG__GIT_PROVIDER": "local", "CONFIG__MODEL": "gpt-4o", "CONFIG__FALLBACK_MODELS": '["gpt-4o"]',
        "CONFIG__PUBLISH_OUTPUT": "true", "LOCAL__REVIEW_PATH": str(out / "review.md"),
        "OPENAI__KEY": KEY, "OPENAI__API_BASE": url, "OPENAI_API_KEY": KEY, "OPENAI_API_BASE": url,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }  # fmt: skip
    # tiktoken would download its encodings; litellm ships them (no network here, and none needed)
    bundled = sorted(python.parent.parent.glob("lib/python*/site-packages/litellm/litellm_core_utils/tokenizers"))
    if bundled:
        env["TIKTOKEN_CACHE_DIR"] = str(bundled[0])
    done = subprocess.run([str(python), "-m", "pr_agent.cli", "--pr_url", "main", "review"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    return done.stdout[-3000:] + done.stderr[-3000:]


def pr_agent_covered(prompts: list[str], changed: set[str]) -> int:
    """Changed files whose diff pr-agent sent (a `## File: 'path'` section), not just their names."""
    sent: set[str] = set()
    for prompt in prompts:
        sent.update(re.findall(r"## [Ff]ile:\s*'([^']+)'", prompt))
    return len(sent & changed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=320)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "taskmaster-bench" / "review")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    python = pr_agent_python(args.cache)
    fake = FakeModel()
    with tempfile.TemporaryDirectory(prefix="bench-review-") as tmp, serve(fake.app()) as url:
        root = Path(tmp)
        repo = make_repo(root, args.files)
        changed = set(git(repo, "diff", "--name-only", "main...feature").splitlines())
        total, covered = asyncio.run(ours(repo, url, root / "state"))
        out = root / "pr-agent"
        out.mkdir()
        tail = pr_agent(repo, url, python, out)
        theirs = fake.by_client.get("pr-agent", Seen())
        mine = fake.by_client.get("ours", Seen())
        if theirs.requests == 0:
            print("pr-agent sent nothing; its output:\n" + tail)
            raise SystemExit(1)
        their_covered = pr_agent_covered(theirs.prompts, changed)
        print(f"changed files: {len(changed)}; ours: {covered} reviewed or clipped, {total - covered} skipped by rule "
              "and listed with the reason (poetry.lock)")  # fmt: skip
        print(f"{'':10} {'requests':>8} {'tokens':>9} {'covered':>8} {'tokens/file':>11}")
        for name, seen, files in (("ours", mine, covered), ("pr-agent", theirs, their_covered)):
            per = seen.tokens / files if files else float("inf")
            print(f"{name:10} {seen.requests:>8} {seen.tokens:>9,} {files:>8} {per:>11,.0f}")
        ratio = (mine.tokens / max(covered, 1)) / (theirs.tokens / max(their_covered, 1))
        print(f"tokens per covered file, ours / pr-agent: {ratio:.2f} (goal <= 1.00); "
              f"coverage {covered}/{len(changed)} vs {their_covered}/{len(changed)} (goal: all)")  # fmt: skip


if __name__ == "__main__":
    main()
