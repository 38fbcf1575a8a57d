"""Keeps secrets out of logs, messages and reports.

Stages that read a secret call ``register_secret`` once; the CLI's log handler and
its error printer pass every line through ``redact``. Stages still build their own
messages from redacted URLs: this is the second line of defence, not the first.
"""

from __future__ import annotations

import logging
import re

_secrets: set[str] = set()
_QUERY_SECRET = re.compile(r"(?i)\b(api_key|access_token|token|signature|x-amz-security-token)=[^&\s\"']+")
_BEARER = re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]{16,}")  # real tokens are long; "bearer token" is prose
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that ``redact`` masks it wherever it appears."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """Mask registered secrets, ``api_key=`` style query values and Bearer tokens."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={MASK}", text)
    return _BEARER.sub(f"Bearer {MASK}", text)


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record and masks secrets in the result."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True
