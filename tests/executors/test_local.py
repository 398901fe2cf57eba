"""`LocalExecutor`: the sandbox behind the `Executor` protocol, and the pipeline engine running steps through any
executor (here an SSH instance on loopback, whose workspace root is the engine's)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from taskmaster.executors.base import StepOutcome, StepSpec
from taskmaster.executors.local import LocalExecutor
from taskmaster.executors.ssh import SshExecutor
from taskmaster.pipelines.logs import read_logs
from taskmaster.pipelines.states import PipelineStatus
from tests.support.pipelines import Harness, load
from tests.support.sshd import Sshd


async def _run(executor: LocalExecutor, spec: StepSpec) -> tuple[StepOutcome, str]:
    output = bytearray()

    async def collect(data: bytes) -> None:
        output.extend(data)

    return await executor.run(spec, on_output=collect), output.decode()


async def test_outcomes_carry_exit_code_signal_name_timeout_and_the_executor_name(reachable_dir: Path) -> None:
    executor = LocalExecutor()
    workdir = str(reachable_dir)

    failed, output = await _run(executor, StepSpec(command="echo hi; exit 3", workdir=workdir, timeout=30))
    killed, _ = await _run(executor, StepSpec(command="kill -9 $$", workdir=workdir, timeout=30))
    slow, _ = await _run(executor, StepSpec(command="sleep 30", workdir=workdir, timeout=0.5, grace=0.5))

    assert (failed.exit_code, failed.failure_reason, failed.ran_on, output) == (3, "code", "local", "hi\n")
    assert (killed.exit_code, killed.signal_name, killed.failure_reason) == (137, "SIGKILL", "code")
    assert (slow.timed_out, slow.failure_reason, slow.ok) == (True, "timeout", False)


async def test_output_is_capped_by_the_spec_and_hidden_paths_are_read_at_each_step(reachable_dir: Path) -> None:
    secret_dir = reachable_dir / "secrets"
    executor = LocalExecutor(hidden=lambda: (secret_dir,) if secret_dir.exists() else ())
    workdir = reachable_dir / "work"
    workdir.mkdir()
    secret_dir.mkdir()  # appears after the executor was made
    (secret_dir / "token").write_text("s3cr3t")
    secret_dir.chmod(0o755)
    (secret_dir / "token").chmod(0o644)

    capped, capped_out = await _run(
        executor, StepSpec(command="seq 1 100000", workdir=str(workdir), timeout=30, max_output_bytes=100)
    )
    hidden, hidden_out = await _run(
        executor, StepSpec(command=f"cat {secret_dir}/token || echo hidden", workdir=str(workdir), timeout=30)
    )

    assert capped.output_truncated and capped_out.startswith("1\n2\n3\n") and "100000" not in capped_out
    assert hidden.ok and "s3cr3t" not in hidden_out and "hidden" in hidden_out


async def test_the_engine_runs_steps_through_any_executor(
    harness_factory: Any,
    sshd: Sshd,
) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    harness: Harness = await harness_factory(
        f"steps:\n  where: {{run: 'echo {marker} uid=$(id -u) files=$(ls)'}}\n"
        "  fails: {run: 'exit 5', needs: [where], allow_failure: true}\n"
    )
    root = harness.settings.workspace_root.absolute()
    root.mkdir(parents=True, exist_ok=True)
    remote = SshExecutor(sshd.instance(workspace_root=str(root)))
    try:
        created = await harness.create()
        engine = harness.engine(executor=remote)
        status = await asyncio.wait_for(engine.run(created.id), 60)
    finally:
        await remote.aclose()

    assert status is PipelineStatus.SUCCESS
    _, steps, attempts = await load(harness.db, created.id)
    assert (steps["fails"].status, steps["fails"].exit_code, steps["fails"].error_message) == (
        "failed",
        5,
        "exit code 5",
    )
    async with harness.db.session() as session:
        text = "".join(chunk.content for chunk in await read_logs(session, created.id, step="where"))
    # Root over SSH, not the local sandbox's unprivileged user; in the checkout of the commit.
    assert text == f"{marker} uid=0 files=README.md\n"
    assert [a.status for a in attempts["where"]] == ["success"]
