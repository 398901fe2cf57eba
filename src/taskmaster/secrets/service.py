"""Key rotation: a new primary key, every encrypted column re-encrypted under it in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from taskmaster.db.models import Project
from taskmaster.secrets.box import SecretBox

# Every column that holds a Fernet token. A new secret column is added here, and nowhere else.
ENCRYPTED_COLUMNS = ((Project, ("webhook_secret", "webhook_secret_previous", "forge_token")),)
# JSON columns whose `secret_env` mapping holds Fernet tokens (the coding agent's secret environment).
ENCRYPTED_JSON = ((Project, ("agentapi_config", "claude_code_config"), "secret_env"),)


@dataclass(frozen=True)
class RotationResult:
    rows: int
    values: int


async def reencrypt_all(session: AsyncSession, box: SecretBox) -> RotationResult:
    """Re-encrypt every stored secret under `box`'s primary key. The caller commits."""
    rows = values = 0
    for model, columns in ENCRYPTED_COLUMNS:
        for obj in (await session.scalars(select(model))).all():
            touched = False
            for column in columns:
                current = getattr(obj, column)
                if current is not None:
                    setattr(obj, column, box.rotate(current))
                    values += 1
                    touched = True
            rows += touched
    for model, json_columns, key in ENCRYPTED_JSON:
        for obj in (await session.scalars(select(model))).all():
            touched = False
            for column in json_columns:
                stored = getattr(obj, column)
                secrets = stored.get(key) if isinstance(stored, dict) else None
                if isinstance(secrets, dict) and secrets:
                    rotated = {name: box.rotate(v) if isinstance(v, str) else v for name, v in secrets.items()}
                    # A new mapping: the JSON column is not mutation-tracked.
                    setattr(obj, column, {**stored, key: rotated})
                    values += len(secrets)
                    touched = True
            rows += touched
    await session.flush()
    return RotationResult(rows=rows, values=values)
