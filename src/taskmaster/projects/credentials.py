"""`Credentials`: the one place a project's stored secrets (forge token, webhook secrets, the coding agent's
secret environment) are decrypted."""

from __future__ import annotations

from collections.abc import Callable

from taskmaster.config import Settings
from taskmaster.db.models import Project
from taskmaster.secrets import SecretBox


class Credentials:
    """Decrypts a project's secret columns with the process's `SecretBox`, made on first use (reading or creating
    the key file), so a process that never needs a secret never touches the key. Thread-safe, no I/O after that."""

    def __init__(self, box: SecretBox | Callable[[], SecretBox]) -> None:
        self._box = box if isinstance(box, SecretBox) else None
        self._make = None if isinstance(box, SecretBox) else box

    @classmethod
    def from_settings(cls, settings: Settings) -> Credentials:
        return cls(lambda: SecretBox.from_settings(settings))

    @property
    def box(self) -> SecretBox:
        """The box itself, for what encrypts (new projects, rotations) or reads other secret columns."""
        if self._box is None:
            assert self._make is not None
            self._box = self._make()
        return self._box

    def forge_token(self, project: Project) -> str | None:
        """The token for the project's forge API and for fetching its repository; None when it has none."""
        return self.box.decrypt(project.forge_token) if project.forge_token else None

    def agent_env(self, project: Project) -> dict[str, str]:
        """The coding agent's secret environment: `secret_env` of `agentapi_config` (and of `claude_code_config`,
        which wins), variable name -> encrypted value, decrypted."""
        found: dict[str, str] = {}
        for config in (project.agentapi_config, project.claude_code_config):
            secrets = (config or {}).get("secret_env") or {}
            if isinstance(secrets, dict):
                for name, value in secrets.items():
                    if isinstance(value, str) and (plain := self.box.decrypt(value)) is not None:
                        found[str(name)] = plain
        return found

    def masked(self, project: Project) -> list[str]:
        """Every secret value of the project, to be masked wherever output is stored or shown."""
        encrypted = [project.forge_token, project.webhook_secret, project.webhook_secret_previous]
        plain = [plain for value in encrypted if value and (plain := self.box.decrypt(value))]
        return [*plain, *(value for value in self.agent_env(project).values() if value)]
