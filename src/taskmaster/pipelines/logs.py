"""Step output in the database: each attempt's output as ordered, batched `step_logs` chunks, with secrets masked.

Offsets count bytes (UTF-8) of the stored, masked text of a step, across all its attempts in order, so a reader
can follow a step with one number (`after_offset`). Each attempt has its own size cap, then one truncation marker.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from types import TracebackType

import structlog
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.core.errors import InvalidInput
from taskmaster.db.models import PipelineStep, StepLog
from taskmaster.db.session import Database

log = structlog.stdlib.get_logger("taskmaster.pipelines.logs")

MASK = "***"
FLUSH_BYTES = 64 * 1024
FLUSH_SECONDS = 0.25
DEFAULT_MAX_BYTES = 4 * 1024 * 1024
TAIL_CHARS = 4000
# Shorter values would mask ordinary words in the output; real tokens and secrets are longer.
MIN_SECRET_LENGTH = 4


@dataclass(frozen=True, slots=True)
class LogChunk:
    """One stored chunk: `offset` is its first byte in its step's whole log."""

    step: str
    attempt: int
    seq: int
    offset: int
    content: str

    @property
    def end(self) -> int:
        return self.offset + len(self.content.encode())


def truncation_marker(max_bytes: int) -> str:
    return f"\n[taskmaster: output truncated after {max_bytes} bytes]\n"


class LogWriter:
    """Collects one attempt's output and writes it as chunks: when 64 KiB are waiting, every 250 ms, and at close.

    Use as `async with LogWriter(...) as writer: await writer.write(data)`. Each flush is its own short
    transaction, so a reader sees output while the step runs. Secrets are replaced by `***` before anything is
    stored, also when a secret is split between two pieces of output (the last few characters are held back until
    more output or the end shows they are not the start of a secret). `tail` keeps the last characters written,
    for error messages. Not safe for use by several tasks at once except through `write` and `close`.
    `start_seq`: the attempt's next chunk number when the caller knows it (0 for a new attempt); otherwise it is
    read from the database on entry.
    """

    def __init__(
        self,
        db: Database,
        step_id: uuid.UUID,
        attempt: int,
        *,
        start_offset: int = 0,
        start_seq: int | None = None,
        secrets: Iterable[str | None] = (),
        max_bytes: int = DEFAULT_MAX_BYTES,
        flush_bytes: int = FLUSH_BYTES,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self.db = db
        self.step_id = step_id
        self.attempt = attempt
        self.offset = start_offset
        self.max_bytes = max_bytes
        self.flush_bytes = flush_bytes
        self.flush_seconds = flush_seconds
        self.secrets = sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._hold = max((len(s) for s in self.secrets), default=1) - 1
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # decoded, not yet masked (may end with the start of a secret)
        self._ready: list[str] = []  # masked, waiting for a flush
        self._ready_bytes = 0
        self._accepted = 0  # bytes of output taken within the cap
        self.truncated = False
        self.tail = ""
        self._seq = start_seq or 0
        self._known_seq = start_seq is not None
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._last_flush = time.monotonic()

    async def __aenter__(self) -> LogWriter:
        if not self._known_seq:
            self._seq = await self._next_seq()
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def write(self, data: bytes) -> None:
        """Take a piece of output (any split: UTF-8 sequences and secrets may straddle pieces)."""
        if self.truncated:
            return
        room = self.max_bytes - self._accepted
        if len(data) > room:
            data = data[:room]
            self.truncated = True
        self._accepted += len(data)
        self._pending += self._decoder.decode(data, final=self.truncated)
        self._mask(final=self.truncated)
        if self.truncated:
            self._add(truncation_marker(self.max_bytes))
        if self._ready_bytes >= self.flush_bytes:
            await self.flush()

    async def close(self) -> None:
        """Write everything still held; stops the timer. Safe to call twice."""
        if self._ticker is not None:
            # Not while the timer's flush is writing: cancelled mid-insert, its chunk (already taken from the
            # buffer) would be lost.
            async with self._lock:
                self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        if not self.truncated:
            self._pending += self._decoder.decode(b"", final=True)
            self._mask(final=True)
        await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            self._last_flush = time.monotonic()
            if not self._ready:
                return
            content = "".join(self._ready)
            self._ready, self._ready_bytes = [], 0
            size = len(content.encode())
            row = StepLog(
                step_id=self.step_id, attempt=self.attempt, seq=self._seq, offset=self.offset, content=content
            )
            async with self.db.single_writer(), self.db.transaction() as session:
                session.add(row)
            self._seq += 1
            self.offset += size

    def _mask(self, *, final: bool) -> None:
        text = self._pending
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        if final or not self.secrets:
            self._pending = ""
            self._add(text)
            return
        # Hold back a suffix that could be the beginning of a secret completed by the next piece.
        keep = 0
        for length in range(min(self._hold, len(text)), 0, -1):
            suffix = text[-length:]
            if any(secret.startswith(suffix) for secret in self.secrets):
                keep = length
                break
        self._pending = text[len(text) - keep :]
        self._add(text[: len(text) - keep])

    def _add(self, text: str) -> None:
        if not text:
            return
        self._ready.append(text)
        self._ready_bytes += len(text.encode())
        self.tail = (self.tail + text)[-TAIL_CHARS:]

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds)
            if self._ready and time.monotonic() - self._last_flush >= self.flush_seconds:
                try:
                    await self.flush()
                except Exception:  # the final flush at close tries again and reports
                    log.warning("log flush failed", step_id=str(self.step_id), exc_info=True)

    async def _next_seq(self) -> int:
        async with self.db.session() as session:
            last = await session.scalar(
                select(func.max(StepLog.seq)).where(StepLog.step_id == self.step_id, StepLog.attempt == self.attempt)
            )
        return 0 if last is None else last + 1


async def log_end(session: AsyncSession, step_id: uuid.UUID) -> int:
    """The byte offset just past a step's stored log (where its next attempt's output starts)."""
    last = (
        await session.execute(
            select(StepLog.offset, StepLog.content)
            .where(StepLog.step_id == step_id)
            .order_by(StepLog.offset.desc(), StepLog.seq.desc())
            .limit(1)
        )
    ).first()
    return 0 if last is None else last.offset + len(last.content.encode())


def chunks_query(pipeline_id: uuid.UUID, *, step: str | None = None) -> Select[str, int, int, int, str]:
    """(step name, attempt, seq, offset, content) of a pipeline's stored chunks, by step (plan order), then offset."""
    query = (
        select(PipelineStep.step_name, StepLog.attempt, StepLog.seq, StepLog.offset, StepLog.content)
        .join(PipelineStep, PipelineStep.id == StepLog.step_id)
        .where(PipelineStep.pipeline_id == pipeline_id)
        .order_by(PipelineStep.position, StepLog.offset, StepLog.attempt, StepLog.seq)
    )
    return query if step is None else query.where(PipelineStep.step_name == step)


async def read_logs(
    session: AsyncSession,
    pipeline_id: uuid.UUID,
    *,
    step: str | None = None,
    after_offset: int = 0,
    attempt: int | None = None,
) -> list[LogChunk]:
    """A pipeline's stored output, by step (plan order), then offset; only chunks ending after `after_offset`.

    A chunk that straddles `after_offset` is cut so that the first returned byte is the one at `after_offset`.
    """
    query = chunks_query(pipeline_id, step=step)
    if attempt is not None:
        query = query.where(StepLog.attempt == attempt)
    chunks: list[LogChunk] = []
    for name, number, seq, offset, content in (await session.execute(query)).all():
        chunk = LogChunk(name, number, seq, offset, content)
        if chunk.end <= after_offset:
            continue
        if chunk.offset < after_offset:
            cut = content.encode()[after_offset - offset :].decode(errors="replace")
            chunk = LogChunk(name, number, seq, after_offset, cut)
        chunks.append(chunk)
    return chunks


async def log_tail(session: AsyncSession, step_id: uuid.UUID, *, chars: int = TAIL_CHARS) -> str:
    """The last `chars` characters of a step's stored log (across attempts)."""
    rows: Sequence[str] = (
        await session.scalars(
            select(StepLog.content).where(StepLog.step_id == step_id).order_by(StepLog.offset.desc()).limit(64)
        )
    ).all()
    text = ""
    for content in rows:
        text = content + text
        if len(text) >= chars:
            break
    return text[-chars:]


FOLLOW_POLL_SECONDS = 0.3
"""How often a followed log is read again for new chunks."""
END_GRACE_SECONDS = 10.0
"""After a pipeline ends, how long a follower waits for steps still `running` (a cancel not yet seen by the
engine) to write their last output, before it ends anyway (an engine that died leaves them so)."""


@dataclass(frozen=True, slots=True)
class LogEnd:
    """The last item of a followed log: how the pipeline ended."""

    status: str
    failure_reason: str | None


# ASCII digits only ('²'.isdigit() is true), and few enough to fit the 64-bit offset column.
_BYTE_OFFSET = re.compile(r"[0-9]{1,18}")


@dataclass(slots=True)
class LogCursor:
    """Where a reader is in a pipeline's log: a byte offset per step (`default` for steps it does not list), for
    one step or all. `follow` moves it past every chunk it yields; `token` writes it as a resume token."""

    offsets: dict[str, int] = field(default_factory=dict)
    default: int = 0
    step: str | None = None

    @classmethod
    def parse(cls, token: str | None, step: str | None = None) -> LogCursor:
        """A cursor from a resume token: a number (for `step`, or for every step) or `name:offset,…` pairs
        (steps not listed: from 0). `InvalidInput` names a token that is neither."""
        token = (token or "").strip()
        if not token:
            return cls(step=step)
        if _BYTE_OFFSET.fullmatch(token):
            return cls({step: int(token)}, step=step) if step is not None else cls(default=int(token))
        offsets: dict[str, int] = {}
        for pair in token.split(","):
            name, sep, number = pair.strip().rpartition(":")
            if not sep or not name or not _BYTE_OFFSET.fullmatch(number):
                raise InvalidInput(f"not a log resume token: {token[:200]!r} (a byte offset, or name:offset,…)")
            offsets[name] = int(number)
        return cls({step: offsets.get(step, 0)}, step=step) if step is not None else cls(offsets)

    def token(self) -> str:
        """The resume token: the step's offset for one step, else `name:offset` of every step seen so far (step
        names hold neither `:` nor `,`)."""
        if self.step is not None:
            return str(self.offsets.get(self.step, 0))
        return ",".join(f"{name}:{after}" for name, after in self.offsets.items())


async def follow(
    db: Database,
    pipeline_id: uuid.UUID,
    cursor: LogCursor,
    *,
    live: bool = True,
    poll_seconds: float = FOLLOW_POLL_SECONDS,
    end_grace_seconds: float = END_GRACE_SECONDS,
) -> AsyncIterator[LogChunk | LogEnd]:
    """The stored chunks past `cursor` (by step in plan order, then offset), moving it past each; when `live`,
    new chunks as they are stored until the pipeline has ended, then a `LogEnd`.

    Each poll uses a short session of its own (not the caller's): a follower may watch for as long as a pipeline
    runs, and holding a connection all that time would starve the pool.
    """
    from taskmaster.pipelines import queries  # queries reads chunks through this module

    loop = asyncio.get_running_loop()
    ended_at: float | None = None
    step = cursor.step
    while True:
        async with db.autocommit_session() as session:
            # Status first: when it is final, the chunks read next hold everything its steps wrote.
            state = await queries.get_state(session, pipeline_id) if live else None
            names = [name for name, _ in state.steps] if state else await queries.step_names(session, pipeline_id)
            for name in names if step is None else [step]:
                # Every step is in each token, so a resume never reads a step from its start again.
                cursor.offsets.setdefault(name, cursor.default)
            chunks = await queries.chunks_after(session, pipeline_id, cursor.offsets, step=step)
        for chunk in chunks:
            cursor.offsets[chunk.step] = chunk.end
            yield chunk
        if state is None:
            return
        if state.finished:
            ended_at = ended_at if ended_at is not None else loop.time()
            running = any(status == "running" for name, status in state.steps if step in (None, name))
            if not running or loop.time() - ended_at >= end_grace_seconds:
                yield LogEnd(state.status, state.failure_reason)
                return
        await asyncio.sleep(poll_seconds)
