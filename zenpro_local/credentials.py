"""API keys and passwords: generation, hashing and verification.

API keys look like ``ZENPROKEY_<key id>_<secret>``. Only a SHA-256 hash of
the whole key is stored: keys are 256-bit random values, so a fast hash is
enough and lookups stay cheap. Passwords are chosen by people, so they are
stored with scrypt.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

API_KEY_PREFIX = "ZENPROKEY_"
_API_KEY = re.compile(r"^ZENPROKEY_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")

# scrypt cost: n=2**14, r=8 takes about 50 ms and 16 MiB per check.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1


@dataclass(frozen=True)
class NewApiKey:
    """A freshly made key: ``key`` is shown once, ``key_hash`` is stored."""

    id: str
    key: str
    key_hash: str


def generate_api_key() -> NewApiKey:
    """Return a new random API key with its id and hash."""
    key_id = secrets.token_hex(8)
    key = f"{API_KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    return NewApiKey(id=key_id, key=key, key_hash=hash_api_key(key))


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_api_key(key: str) -> str | None:
    """Return the key id of a well-formed API key, or None."""
    match = _API_KEY.match(key)
    return match.group(1) if match else None


def api_key_matches(key: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), key_hash)


def hash_password(password: str) -> str:
    """Return a salted scrypt hash of ``password`` in a self-describing form."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P)
    encoded_salt = base64.b64encode(salt).decode()
    encoded_digest = base64.b64encode(digest).decode()
    return (
        f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}$"
        f"{encoded_salt}${encoded_digest}"
    )


def verify_password(password: str, stored: str | None) -> bool:
    """Return whether ``password`` matches the ``stored`` hash."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    return hmac.compare_digest(actual, base64.b64decode(digest))


@functools.cache
def decoy_password_hash() -> str:
    """Return a hash of a random password, to check a sign-in against.

    Checking unknown usernames against it costs one scrypt too, so response
    times do not tell which usernames exist.
    """
    return hash_password(secrets.token_hex(16))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32
    )
