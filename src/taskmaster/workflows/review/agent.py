"""The reviewer through a coding agent (Claude Code and the others, through AgentAPI): the agent reads the checkout
at the head (files beyond the diff included) and writes its verdict as JSON to a file in it; an invalid file gets
one repair round."""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from taskmaster.agents.base import AgentNotConfigured, CodingAgent, CodingJob
from taskmaster.agents.llm.base import validation_feedback
from taskmaster.config.settings import ModelPrice
from taskmaster.costs.service import CallRecord, record_call
from taskmaster.db.session import Database
from taskmaster.templates.render import render
from taskmaster.workflows.review.base import (
    InvalidVerdict,
    ReviewAnswer,
    ReviewerNotConfigured,
    ReviewerUnavailable,
    ReviewJob,
)
from taskmaster.workflows.review.chunks import Chunk
from taskmaster.workflows.review.llm import PURPOSE, TEMPLATE, prompt_variables
from taskmaster.workflows.review.schemas import Verdict

VERDICT_FILE = ".taskmaster-review/verdict.json"
"""Where in its checkout the agent writes its verdict."""
MAX_VERDICT_BYTES = 2 * 1024 * 1024

AgentMaker = Callable[[], CodingAgent]


class AgentReviewer:
    """Reviews with a coding agent made by `make_agent` (one per review, closed after it)."""

    def __init__(
        self,
        make_agent: AgentMaker,
        db: Database,
        *,
        prices: Mapping[str, ModelPrice],
        project_name: str,
        timeout: float = 1800.0,
    ) -> None:
        self.make_agent = make_agent
        self.db = db
        self.prices = prices
        self.project_name = project_name
        self.timeout = timeout
        self._label = "agentapi"

    @property
    def name(self) -> str:
        return self._label

    async def review(self, job: ReviewJob) -> ReviewAnswer:
        checkout = await job.checkout()
        whole = Chunk(
            files=[f for c in job.plan.chunks for f in c.files], parts=[p for c in job.plan.chunks for p in c.parts]
        )
        variables = {**prompt_variables(job.input, whole, 1, 1), "agent": True, "verdict_path": VERDICT_FILE}
        async with self.db.session() as session:  # rendering only reads
            prompt = await render(session, TEMPLATE, variables)
        try:
            agent = self.make_agent()
        except AgentNotConfigured as exc:
            raise ReviewerNotConfigured(f"the reviewing agent cannot run: {exc.detail}") from None
        self._label = agent.label
        tokens_in = tokens_out = requests = 0
        try:
            text = prompt.text
            for round_number in (1, 2):
                # The checkout is the pull request's tree: a verdict file it carries must not pass for the agent's.
                await asyncio.to_thread(clear_verdict, checkout)
                result = await agent.run(self._job(job, checkout, text))
                requests += 1
                tokens_in += result.input_tokens or 0
                tokens_out += result.output_tokens or 0
                if not result.ok:
                    problem = result.error or result.failure or "the agent failed"
                    if result.failure == "infra":
                        raise ReviewerUnavailable(f"the reviewing agent {agent.label} could not run: {problem}")
                    raise InvalidVerdict(f"the reviewing agent {agent.label} ended without a verdict: {problem}")
                verdict, problem = read_verdict(checkout, VERDICT_FILE)
                if verdict is not None:
                    await job.log(f"{agent.label} wrote its verdict (round {round_number})\n")
                    return ReviewAnswer(verdict, tokens_in, tokens_out, requests)
                await job.log(f"{agent.label}: invalid verdict in round {round_number}: {problem}\n")
                # The whole request again: the repair round may be a new session that saw none of the first.
                text = (
                    f"{prompt.text}\n\n## Your previous verdict was not valid\n"
                    f"The verdict written to {VERDICT_FILE} was not valid:\n{problem}\n\n"
                    f"Write it again, fixed, to the same file (JSON with summary, findings, meets_acceptance)."
                )
            raise InvalidVerdict(
                f"the reviewing agent {agent.label} gave no valid verdict after one repair round: {problem}"
            )
        finally:
            await agent.aclose()
            await self._record(job, agent.label, prompt.name, prompt.version, tokens_in, tokens_out, requests)

    def _job(self, job: ReviewJob, checkout: Path, prompt: str) -> CodingJob:
        return CodingJob(
            project_id=job.project_id,
            project_name=self.project_name,
            task_number=None,
            title=f"Review {job.input.head_sha[:12]}",
            prompt=prompt,
            checkout=checkout,
            branch="",
            base_branch="",
            timeout=self.timeout,
            acceptance=job.input.acceptance,
        )

    async def _record(
        self, job: ReviewJob, label: str, template: str, version: int, tokens_in: int, tokens_out: int, requests: int
    ) -> None:
        if requests == 0:
            return
        async with self.db.transaction() as session:
            await record_call(
                session,
                CallRecord(
                    project_id=job.project_id, purpose=PURPOSE, provider=label, input_tokens=tokens_in,
                    output_tokens=tokens_out, requests=requests, template_name=template, template_version=version,
                    pipeline_id=job.pipeline_id, workflow_run_id=job.workflow_run_id,
                ),
                prices=self.prices,
            )  # fmt: skip


def clear_verdict(checkout: Path) -> None:
    """Remove whatever is at the verdict's place in `checkout` (a file, a directory or a link the tree carries)."""
    folder = checkout / Path(VERDICT_FILE).parent
    if folder.is_symlink() or folder.is_file():
        folder.unlink()
    elif folder.is_dir():
        shutil.rmtree(folder)


def read_verdict(checkout: Path, name: str) -> tuple[Verdict | None, str]:
    """The verdict in `checkout/name`, or None with what is wrong with it (missing, outside the checkout through a
    link, too large, not JSON, not a Verdict)."""
    path = checkout / name
    try:
        if not path.resolve().is_relative_to(checkout.resolve()):
            return None, f"{VERDICT_FILE} leads outside the checkout"
        if path.is_symlink() or not path.is_file():
            return None, f"{VERDICT_FILE} was not written (or is not a regular file)"
        if path.stat().st_size > MAX_VERDICT_BYTES:
            return None, f"{VERDICT_FILE} is over {MAX_VERDICT_BYTES:,} bytes"
        data: Any = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{VERDICT_FILE} cannot be read: {exc}"
    except json.JSONDecodeError as exc:
        return None, f"{VERDICT_FILE} is not JSON: {exc}"
    try:
        return Verdict.model_validate(data), ""
    except ValidationError as exc:
        return None, validation_feedback(exc)
