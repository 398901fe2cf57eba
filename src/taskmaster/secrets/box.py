"""`SecretBox`: encrypt and decrypt secret columns with MultiFernet (newest key first, older keys still read).

Keys come from `TASKMASTER_SECRET_KEYS` (comma separated) or, when unset, from `<state dir>/secret.key`
(one key per line, newest first, mode 0600), which is created on first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from taskmaster.config import Settings
from taskmaster.core.errors import InvalidInput, TaskmasterError

KEY_FILE = "secret.key"


class SecretKeyError(TaskmasterError):
    code = "secret_key_error"
    title = "Secret key problem"


class SecretBox:
    """Encrypts text with the primary key; decrypts with any configured key. Thread-safe, stateless."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretKeyError("no encryption key configured")
        try:
            self._fernets = [Fernet(key.encode()) for key in keys]
        except (ValueError, TypeError):
            raise InvalidInput("a secret key is not a valid Fernet key (32 url-safe base64-encoded bytes)") from None
        self._multi = MultiFernet(self._fernets)
        self.keys = tuple(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        configured = settings.auth.secret_keys
        if configured is not None:
            return cls([k.strip() for k in configured.get_secret_value().split(",") if k.strip()])
        return cls(load_or_create_key_file(key_file_path(settings)))

    def encrypt(self, plaintext: str | None) -> str | None:
        return None if plaintext is None else self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str | None) -> str | None:
        return self._with_keys(self._multi.decrypt, token)

    def rotate(self, token: str | None) -> str | None:
        """Re-encrypt a stored value under the primary key."""
        return self._with_keys(self._multi.rotate, token)

    @staticmethod
    def _with_keys(operation: Callable[[bytes], bytes], token: str | None) -> str | None:
        if token is None:
            return None
        try:
            return operation(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a stored secret cannot be decrypted with the configured keys (was a key removed?)"
            ) from None


def key_file_path(settings: Settings) -> Path:
    return settings.state_dir / KEY_FILE


def new_key() -> str:
    return Fernet.generate_key().decode()


def load_or_create_key_file(path: Path) -> list[str]:
    if path.exists():
        keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if not keys:
            raise SecretKeyError(f"{path} holds no key")
        return keys
    write_key_file(path, [new_key()])
    return load_or_create_key_file(path)


def write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Replace the key file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(keys) + "\n")
    os.replace(tmp, path)
