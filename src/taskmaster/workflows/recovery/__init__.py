"""AI recovery of failed steps: the `recovery` workflow kind (`workflow.py`), its debug rounds (`service.py`), the
debuggers behind one protocol (`base.py`, `debuggers.py`), the patch checks (`checks.py`) and git work (`gitops.py`)."""

from taskmaster.workflows.recovery.workflow import (
    AGENT_SETTING,
    KIND,
    RecoveryDecision,
    RecoveryHandler,
    RecoveryRequest,
    RecoveryWorkflow,
    recovery_agent,
    request_recovery,
)

__all__ = [
    "AGENT_SETTING",
    "KIND",
    "RecoveryDecision",
    "RecoveryHandler",
    "RecoveryRequest",
    "RecoveryWorkflow",
    "recovery_agent",
    "request_recovery",
]
