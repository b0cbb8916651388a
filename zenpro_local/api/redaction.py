"""Removes credentials from what aiohttp logs about requests.

aiohttp logs parts of raw requests itself, outside the daemon's handlers.
When a request line or header is over its size limit, aiohttp logs an error
whose traceback quotes the first 100 bytes of that line. For a header
``Authorization: Bearer ZENPROKEY_...`` followed by more bytes, that is the
whole API key. Its access log, when enabled, repeats every request line
with its query string. :class:`CredentialFilter` rewrites such records
before any handler formats them.
"""

from __future__ import annotations

import logging
import re

# aiohttp's loggers that can repeat bytes a client sent.
AIOHTTP_LOGGERS = ("aiohttp.access", "aiohttp.server", "aiohttp.web")

REDACTED = "[redacted]"

_PATTERNS = (
    # API keys, whole or cut short, and any bearer token.
    (re.compile(r"ZENPROKEY_[A-Za-z0-9_-]*"), "ZENPROKEY_" + REDACTED),
    (re.compile(r"(?i)\b(bearer\s+)[^\s'\",;]+"), r"\1" + REDACTED),
    # name=value pairs of cookies, query strings and forms whose name says
    # they hold a secret: session, token, password, secret, key.
    (
        re.compile(
            r"(?i)\b([\w.-]*(?:session|token|password|passwd|secret|key)[\w.-]*=)"
            r"[^\s;&'\",]+"
        ),
        r"\1" + REDACTED,
    ),
)

# Attributes every LogRecord has; others come from ``extra`` (the access
# log puts the request line and headers there).
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({})))
_FORMATTER = logging.Formatter()


def redact(text: str) -> str:
    """Return ``text`` with API keys, bearer tokens and secret values replaced."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class CredentialFilter(logging.Filter):
    """Rewrites a record's message, traceback and extras with :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None

        if record.exc_info or record.exc_text:
            text = record.exc_text or _FORMATTER.formatException(record.exc_info)
            # Formatters print exc_text as it is, and only format exc_info
            # themselves when exc_text is empty, so drop exc_info.
            record.exc_text = redact(text)
            record.exc_info = None

        for name, value in list(vars(record).items()):
            if name in _STANDARD_ATTRIBUTES:
                continue
            if isinstance(value, str):
                setattr(record, name, redact(value))
            elif isinstance(value, dict):
                setattr(record, name, _redact_values(value))
        return True


def _redact_values(values: dict) -> dict:
    return {
        key: redact(value) if isinstance(value, str) else value
        for key, value in values.items()
    }


def install() -> None:
    """Add a :class:`CredentialFilter` to aiohttp's loggers; idempotent."""
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(each, CredentialFilter) for each in logger.filters):
            logger.addFilter(CredentialFilter())
