"""Secrets at rest: Fernet encryption of the columns that hold webhook secrets, tokens and keys."""

from taskmaster.secrets.box import SecretBox

__all__ = ["SecretBox"]
