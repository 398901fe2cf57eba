"""Step slots: how many steps one engine runs at once over all its pipelines, counted in one place."""

from __future__ import annotations

import uuid


class StepSlots:
    """At most `limit` steps running (or about to) in all of an engine's pipelines.

    A pipeline's round `reserve`s slots before its first await (so that other pipelines' rounds see them taken),
    `hand_over`s those it launched (the rest are freed), and each launched step `release`s its slot when it ends;
    `forget` frees what a round reserved and never handed over (the pipeline's driver is leaving).
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._taken = 0
        self._reserved: dict[uuid.UUID, int] = {}

    @property
    def taken(self) -> int:
        return self._taken

    def reserve(self, pipeline_id: uuid.UUID, wanted: int, *, room_in_pipeline: int) -> int:
        """Take up to `wanted` slots for the pipeline (also at most `room_in_pipeline`); returns how many."""
        count = max(0, min(wanted, room_in_pipeline, self.limit - self._taken))
        self._taken += count
        self._reserved[pipeline_id] = self._reserved.get(pipeline_id, 0) + count
        return count

    def hand_over(self, pipeline_id: uuid.UUID, launched: int) -> None:
        """`launched` of the pipeline's reserved slots now belong to running steps; the others are free again."""
        self._taken -= self._reserved.pop(pipeline_id, 0) - launched

    def release(self) -> None:
        """A launched step ended."""
        self._taken -= 1

    def forget(self, pipeline_id: uuid.UUID) -> None:
        """Free whatever the pipeline reserved and did not hand over."""
        self._taken -= self._reserved.pop(pipeline_id, 0)
