"""Step logs: ordered, batched chunks with byte offsets, masking across pieces, one truncation marker, reading on."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from sqlalchemy import select

from taskmaster.core.errors import InvalidInput
from taskmaster.db.models import PipelineStep
from taskmaster.pipelines.logs import LogCursor, LogWriter, log_end, read_logs, truncation_marker
from tests.support.pipelines import Harness

ONE_STEP = "steps:\n  build: {run: 'true'}\n"


async def _step(harness: Harness) -> tuple[Any, PipelineStep]:
    created = await harness.create()
    async with harness.db.session() as session:
        step = await session.scalar(select(PipelineStep).where(PipelineStep.pipeline_id == created.id))
    assert step is not None
    return created.id, step


async def test_chunks_are_ordered_with_byte_offsets_and_reading_after_an_offset_resumes_exactly(
    harness_factory: Any,
) -> None:
    harness: Harness = await harness_factory(ONE_STEP)
    pipeline_id, step = await _step(harness)
    pieces = [b"first line\n", "d\u00e9j\u00e0 vu\n".encode(), b"x" * 40 + b"\n", b"last\n"]
    async with LogWriter(harness.db, step.id, 1, flush_bytes=16, flush_seconds=60) as writer:
        for piece in pieces:
            await writer.write(piece)
    async with harness.db.session() as session:
        chunks = await read_logs(session, pipeline_id)
        end = await log_end(session, step.id)
    whole = b"".join(pieces)
    assert "".join(c.content for c in chunks).encode() == whole
    assert [c.seq for c in chunks] == list(range(len(chunks))) and len(chunks) >= 3, "batched, not one row"
    assert chunks[0].offset == 0 and all(a.end == b.offset for a, b in itertools.pairwise(chunks))
    assert end == len(whole)
    async with harness.db.session() as session:
        after = await read_logs(session, pipeline_id, step="build", after_offset=12)
    assert "".join(c.content for c in after).encode() == whole[12:]
    assert after[0].offset == 12

    # A second attempt continues the step's offsets.
    async with LogWriter(harness.db, step.id, 2, start_offset=end) as writer:
        await writer.write(b"again\n")
    async with harness.db.session() as session:
        second = await read_logs(session, pipeline_id, after_offset=end)
    assert [(c.attempt, c.offset, c.content) for c in second] == [(2, end, "again\n")]


async def test_secrets_are_masked_even_when_split_between_pieces(harness_factory: Any) -> None:
    harness: Harness = await harness_factory(ONE_STEP)
    pipeline_id, step = await _step(harness)
    async with LogWriter(harness.db, step.id, 1, secrets=["s3cr3t-value", None, "ab"], flush_bytes=4) as writer:
        await writer.write(b"token s3cr")
        await writer.write(b"3t-value and s3cr3t-value; ab stays\n")
        await writer.write(b"ends with s3c")
    async with harness.db.session() as session:
        text = "".join(c.content for c in await read_logs(session, pipeline_id))
    assert text == "token *** and ***; ab stays\nends with s3c"


async def test_output_past_the_cap_is_dropped_after_one_truncation_marker(harness_factory: Any) -> None:
    harness: Harness = await harness_factory(ONE_STEP)
    pipeline_id, step = await _step(harness)
    async with LogWriter(harness.db, step.id, 1, max_bytes=20) as writer:
        await writer.write(b"0123456789" * 3)
        await writer.write(b"more and more\n")
    assert writer.truncated
    async with harness.db.session() as session:
        text = "".join(c.content for c in await read_logs(session, pipeline_id))
    assert text == "01234567890123456789" + truncation_marker(20)
    assert text.count("truncated") == 1


async def test_a_quiet_step_output_is_flushed_by_the_timer_while_it_runs(harness_factory: Any) -> None:
    import asyncio

    harness: Harness = await harness_factory(ONE_STEP)
    pipeline_id, step = await _step(harness)
    async with LogWriter(harness.db, step.id, 1, flush_seconds=0.05) as writer:
        await writer.write(b"early\n")
        await asyncio.sleep(0.3)
        async with harness.db.session() as session:
            seen = await read_logs(session, pipeline_id)
        assert [c.content for c in seen] == ["early\n"]


@pytest.mark.parametrize(
    ("token", "step", "offsets", "default", "written"),
    [
        (None, None, {}, 0, ""),
        ("42", None, {}, 42, ""),
        ("42", "test", {"test": 42}, 0, "42"),
        ("lint:10,test:0", None, {"lint": 10, "test": 0}, 0, "lint:10,test:0"),
        ("lint:10,test:7", "test", {"test": 7}, 0, "7"),
    ],
)
def test_a_log_cursor_reads_and_writes_resume_tokens(
    token: str | None, step: str | None, offsets: dict[str, int], default: int, written: str
) -> None:
    cursor = LogCursor.parse(token, step)
    assert (cursor.offsets, cursor.default, cursor.token()) == (offsets, default, written)


def test_a_malformed_resume_token_is_refused_naming_it() -> None:
    with pytest.raises(InvalidInput, match="not a log resume token: 'lint:x'"):
        LogCursor.parse("lint:x")


async def test_closing_while_the_timer_flushes_loses_nothing(harness_factory: Any) -> None:
    import asyncio
    from contextlib import asynccontextmanager

    harness: Harness = await harness_factory(ONE_STEP)
    pipeline_id, step = await _step(harness)
    real = harness.db.transaction
    slow = asyncio.Event()

    @asynccontextmanager
    async def slow_transaction() -> Any:
        async with real() as session:
            slow.set()
            await asyncio.sleep(0.3)  # an insert that takes a while (PostgreSQL under load)
            yield session

    writer = LogWriter(harness.db, step.id, 1, flush_bytes=1 << 20, flush_seconds=0.05)
    async with writer:
        await writer.write(b"written just before the end\n")
        harness.db.transaction = slow_transaction  # type: ignore[method-assign]
        await asyncio.wait_for(slow.wait(), 5)  # the timer's flush is writing now
    harness.db.transaction = real  # type: ignore[method-assign]
    async with harness.db.session() as session:
        text = "".join(c.content for c in await read_logs(session, pipeline_id))
    assert text == "written just before the end\n"
