"""`SecretBox`: encrypt and decrypt secret columns with MultiFernet (newest key first, older keys still read).

Keys come from `TASKMASTER_SECRET_KEYS` (comma separated) or, when unset, from `<state dir>/secret.key`
(one key per line, newest first, mode 0600), which is created on first use.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from taskmaster.config import Settings
from taskmaster.config.state import private_dir
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
    """The keys in `path`, creating it with one new key if it does not exist.

    Processes sharing a state directory may start together (a server and its workers): the file is created with a
    hard link from a private temporary file, which fails if it exists already, so exactly one key is written and
    every process reads that one (a lost race must not leave a process encrypting with a key nobody keeps).
    """
    if not path.exists():
        tmp = _private_copy(path, [new_key()])
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process created it first: use its key
        finally:
            tmp.unlink(missing_ok=True)
    keys = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not keys:
        raise SecretKeyError(f"{path} holds no key")
    return keys


def write_key_file(path: Path, keys: Sequence[str]) -> None:
    """Replace the key file atomically, readable by its owner only."""
    os.replace(_private_copy(path, keys), path)


def _private_copy(path: Path, keys: Sequence[str]) -> Path:
    """A new file beside `path` (a name of its own, mode 0600) holding `keys`, written through."""
    private_dir(path.parent)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as fh:  # mkstemp makes it 0600
        fh.write("\n".join(keys) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return Path(name)
