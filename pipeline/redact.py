"""Keeps secrets out of logs, messages and reports.

The CLI calls ``register_env_secrets`` first thing, so every secret the environment
carries (``SECRET_ENV_VARS``) is known before any config is read or plugin imported;
stages that read a secret elsewhere call ``register_secret``. The CLI's log handler and
its error printer pass every line through ``redact``, which masks each secret as is
and URL-encoded (``%2B``/``%2b``, ``+`` for spaces), since a server may echo the URL it
was sent. Stages still build their own messages from redacted URLs: this is the second
line of defence, not the first.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from urllib.parse import quote, quote_plus

SECRET_ENV_VARS: tuple[str, ...] = (
    "TMDB_ACCESS_TOKEN",
    "TMDB_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "GITHUB_TOKEN",
    "NOTIFY_URL",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
)
"""Environment variables whose values are secrets, registered at process start."""

_secrets: set[str] = set()
_PERCENT = re.compile(r"%[0-9A-F]{2}")
_QUERY_SECRET = re.compile(r"(?i)\b(api_key|access_token|token|signature|x-amz-security-token)=[^&\s\"']+")
_BEARER = re.compile(r"(?i)\bBearer\s+[A-Za-z0-9._~+/=-]{16,}")  # real tokens are long; "bearer token" is prose
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember ``value`` so that ``redact`` masks it wherever it appears, URL-encoded too."""
    if not value or len(value) < 4:
        return
    for form in (value, value.strip(), quote(value, safe=""), quote(value), quote_plus(value)):
        if len(form) >= 4:
            _secrets.add(form)
            # Percent-escapes are case-insensitive; servers echo them either way.
            _secrets.add(_PERCENT.sub(lambda m: m.group(0).lower(), form))


def register_env_secrets(env: Mapping[str, str] | None = None) -> None:
    """Register the value of every variable in ``SECRET_ENV_VARS`` that ``env`` (default: the process's) sets."""
    env = os.environ if env is None else env
    for name in SECRET_ENV_VARS:
        register_secret(env.get(name))


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
