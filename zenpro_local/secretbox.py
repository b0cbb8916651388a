"""Encryption at rest for secrets the daemon must read back (Fernet).

Tenant secrets (JWT signing keys, ZenML admin passwords) are stored
encrypted in the state database with a key kept in ``<data_dir>/secret.key``
(file mode 0600). Losing that file makes those secrets unreadable: back it
up together with ``state.db``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

logger = logging.getLogger(__name__)


class SecretBoxError(Exception):
    """A stored secret cannot be decrypted with the current key."""


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically with file mode 0600."""
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


class SecretBox:
    """Encrypts and decrypts small JSON documents with one Fernet key."""

    def __init__(self, key: bytes):
        self._fernet = Fernet(key)

    @classmethod
    def load_or_create(cls, path: Path) -> "SecretBox":
        """Read the key at ``path``, creating it (mode 0600) when missing."""
        if not path.exists():
            write_private_file(path, Fernet.generate_key())
            logger.info("Created secret key %s; back it up with state.db", path)
        if path.stat().st_mode & 0o077:
            logger.warning("Secret key %s is readable by others: chmod 600 it", path)
        return cls(path.read_bytes().strip())

    def seal(self, values: dict[str, str]) -> str:
        return self._fernet.encrypt(json.dumps(values).encode()).decode()

    def open(self, token: str) -> dict[str, str]:
        """Return the values sealed in ``token`` ({} for an empty token).

        Raises:
            SecretBoxError: the token was sealed with another key.
        """
        if not token:
            return {}
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise SecretBoxError(
                "a stored secret cannot be decrypted: secret.key does not "
                "match the state database; restore the matching secret.key"
            ) from None
