"""How a run of a step ended: one `Outcome` type and one `FailureReason`, shared by the sandbox, the executors, the
built-in steps and the engine that records them (declared here, below all of them)."""

from __future__ import annotations

import signal as signals
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

AttemptStatus = Literal["success", "failed", "timed_out", "canceled", "skipped", "error"]


class FailureReason(StrEnum):
    """Why something failed: `code` (non-zero exit, failing tests), `infra` (clone, sandbox, agent lost, rate
    limit) or `timeout`. Only `infra`, `timeout` and listed exit codes are retried automatically."""

    CODE = "code"
    INFRA = "infra"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How one run ended. Whoever runs something returns one and does not raise for the run's or the machine's
    failures.

    `exit_code`: the shell's status, None when none is known (the command never started, or the connection to it
    was lost); a command ended by signal n reads as 128+n, as shells report it, with `signal` = n.
    `failure_reason`: None (success, canceled, skipped), `code` (non-zero exit, limits included), `timeout`, or
    `infra` (the run could not happen or was lost: retry it, maybe elsewhere). `reason`: one readable line for
    people (e.g. "limit: processes", "sandbox: <why>", naming the host for infra failures); None on success.
    `duration`: seconds from start to end. `output_bytes`: everything written, kept or not. `ran_on`: the
    executor's name. `sandboxed`: whether bubblewrap isolated it. `skipped`: a built-in step that had nothing to do
    (e.g. no reviewer configured).
    """

    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    canceled: bool = False
    skipped: bool = False
    output_truncated: bool = False
    output_bytes: int = 0
    duration: float = 0.0
    failure_reason: FailureReason | None = None
    reason: str | None = None
    ran_on: str | None = None
    sandboxed: bool = False

    def __post_init__(self) -> None:
        if self.failure_reason is not None and not isinstance(self.failure_reason, FailureReason):
            object.__setattr__(self, "failure_reason", FailureReason(self.failure_reason))  # "code" from a caller

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.failure_reason is None and not self.canceled

    @property
    def signal_name(self) -> str | None:
        """ "SIGKILL" for 9; "SIG<n>" for a number this platform does not name; None without a signal."""
        return signal_name(self.signal) if self.signal is not None else None

    @property
    def status(self) -> AttemptStatus:
        """What the attempt this outcome ends becomes: `error` when nothing ran and no retry could help (a built-in
        step that cannot run), `failed` for any other failure."""
        if self.canceled:
            return "canceled"
        if self.skipped:
            return "skipped"
        if self.timed_out:
            return "timed_out"
        if self.ok:
            return "success"
        if self.failure_reason is None and self.exit_code is None:
            return "error"
        return "failed"

    @classmethod
    def infra(
        cls,
        reason: str,
        *,
        duration: float = 0.0,
        ran_on: str | None = None,
        output_bytes: int = 0,
        sandboxed: bool = False,
    ) -> Outcome:
        """A run that could not happen, or was lost: retry it, maybe elsewhere."""
        return cls(
            failure_reason=FailureReason.INFRA,
            reason=reason,
            duration=duration,
            ran_on=ran_on,
            output_bytes=output_bytes,
            sandboxed=sandboxed,
        )

    @classmethod
    def stopped(cls, *, duration: float = 0.0, ran_on: str | None = None, reason: str = "canceled") -> Outcome:
        """A run canceled (before it started, or stopped on request)."""
        return cls(canceled=True, reason=reason, duration=duration, ran_on=ran_on)

    @classmethod
    def cannot_run(cls, reason: str) -> Outcome:
        """Nothing can run and retrying would not help (e.g. an unknown built-in step): the step is in error."""
        return cls(reason=reason)


def signal_name(number: int) -> str:
    """ "SIGKILL" for 9; "SIG<n>" for a number this platform does not name."""
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"SIG{number}"
