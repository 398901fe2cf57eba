"""The kinds of workflow run a worker can run, by name."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from taskmaster.core.errors import InvalidInput
from taskmaster.workflows.base import WorkflowKind


class WorkflowRegistry(Mapping[str, WorkflowKind]):
    """Workflow kinds by name; `with_kinds` gives a registry where the given kinds replace those of their name."""

    def __init__(self, kinds: Iterable[WorkflowKind] = ()) -> None:
        self._kinds = {kind.name: kind for kind in kinds}

    def __getitem__(self, name: str) -> WorkflowKind:
        return self._kinds[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._kinds)

    def __len__(self) -> int:
        return len(self._kinds)

    def with_kinds(self, *kinds: WorkflowKind) -> WorkflowRegistry:
        return WorkflowRegistry([*self._kinds.values(), *kinds])

    def require(self, name: str) -> WorkflowKind:
        """The kind called `name`; `InvalidInput` naming the known ones otherwise."""
        kind = self._kinds.get(name)
        if kind is None:
            raise InvalidInput(f"unknown workflow kind {name!r}; known: {', '.join(sorted(self._kinds)) or 'none'}")
        return kind


def default_workflows() -> WorkflowRegistry:
    """The kinds every worker runs: `review` and `recovery`, without a reviewer or a recovery agent until they are
    configured (see `workflows.review`, `workflows.recovery`)."""
    from taskmaster.workflows.recovery import RecoveryWorkflow
    from taskmaster.workflows.review import ReviewWorkflow

    return WorkflowRegistry([ReviewWorkflow(), RecoveryWorkflow()])
