"""HTTP to TMDB: credentials, the one place that classifies responses, and retries.

Every request goes through one ``TmdbClient``: a semaphore bounds requests in flight,
the shared ``AdaptiveRateLimiter`` spaces them, ``_classify`` decides what a response
or a failure means (payload, retriable or fatal), and tenacity retries only
``TransientError``. Messages are built from ``_display`` URLs, which never carry the
``api_key``; aiohttp exceptions are summarised, never chained, because their text and
``request_info`` can contain the full URL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email.utils
import json
import logging
import math
import os
import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlencode

import tenacity

from pipeline.datalake import schema
from pipeline.errors import ConfigError, ExtractError, TransientError, TransientExtractError
from pipeline.redact import redact, register_secret
from stages.extractors.tmdb.progress import Progress
from stages.extractors.tmdb.ratelimit import AdaptiveRateLimiter

if TYPE_CHECKING:
    import aiohttp  # imported where used, so that `check` builds the extractor without it

logger = logging.getLogger(__name__)

Cause = Literal["429", "5xx", "timeout", "connection", "invalid_json"]
CAUSES: tuple[Cause, ...] = ("429", "5xx", "timeout", "connection", "invalid_json")
RETRIABLE_STATUS = frozenset({500, 502, 503, 504})
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
_READ_CHUNK = 64 * 1024
_SNIPPET = 120
_TAGS = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"\s+")

Sleep = Callable[[float], Awaitable[None]]
Validator = Callable[[Any], bool]


@dataclasses.dataclass(frozen=True, repr=False)
class Credentials:
    """The TMDB secret of a run: a v4 read token (sent as a header) or a v3 key (a query parameter)."""

    bearer: str | None = None
    api_key: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Credentials:
        """``TMDB_ACCESS_TOKEN`` (preferred) or ``TMDB_API_KEY``; neither is a ``ConfigError``."""
        env = os.environ if env is None else env
        token = (env.get("TMDB_ACCESS_TOKEN") or "").strip()
        key = (env.get("TMDB_API_KEY") or "").strip()
        # Register both even if only one is used: neither may ever be logged.
        register_secret(token)
        register_secret(key)
        if token:
            return cls(bearer=token)
        if key:
            return cls(api_key=key)
        raise ConfigError(
            "no TMDB credentials: set TMDB_ACCESS_TOKEN (v4 read access token, preferred) or TMDB_API_KEY (v3 key)"
        )

    @property
    def scheme(self) -> str:
        """How the secret is sent, for logs."""
        return "v4 token in the Authorization header" if self.bearer else "v3 key in the api_key query parameter"

    def headers(self) -> dict[str, str]:
        """Request headers carrying the secret, if it goes in a header."""
        return {"Authorization": f"Bearer {self.bearer}"} if self.bearer else {}

    def params(self) -> dict[str, str]:
        """Query parameters carrying the secret, if it goes in the query."""
        return {"api_key": self.api_key} if self.api_key and not self.bearer else {}

    def __repr__(self) -> str:
        return f"Credentials(<{self.scheme}>)"


class TmdbApiError(ExtractError):
    """TMDB refused a request for good (400, 401, 404, ...): retrying will not help."""

    def __init__(
        self,
        message: str,
        *,
        stage: str | None,
        http_status: int | None = None,
        tmdb_code: int | None = None,
    ) -> None:
        super().__init__(message, stage=stage)
        self.http_status = http_status
        self.tmdb_code = tmdb_code


class TmdbTransientError(TransientExtractError):
    """A failure worth retrying; ``cause`` is one of ``CAUSES``, ``retry_after`` from the server."""

    def __init__(self, reason: str, *, cause: Cause, stage: str | None, retry_after: float | None = None) -> None:
        super().__init__(reason, stage=stage)
        self.reason = reason
        self.cause = cause
        self.retry_after = retry_after


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure."""

    max_attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        for name in ("backoff", "max_backoff"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds, at least 0, got {value!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts!r}")


@dataclasses.dataclass(frozen=True)
class Fetched:
    """A successful response: the decoded JSON, the body bytes exactly as received, and the request."""

    document: Any
    body: bytes
    status: int
    request: str


class BodyTooLarge(Exception):
    """A response body grew past the configured cap while it was read."""


def parse_retry_after(value: str | None, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date), or ``None``.

    A value that is negative, NaN or infinite is no instruction at all (``None``: back off as
    usual), never "retry at once"; a date in the past means now.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    now = now or dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())


class _RetryWait(tenacity.wait.wait_base):
    """Wait what the server asked for (capped), else exponential backoff with full jitter."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, TmdbTransientError) and exc.retry_after is not None and math.isfinite(exc.retry_after):
            return min(max(exc.retry_after, 0.0), self.policy.max_backoff)
        ceiling = min(self.policy.max_backoff, self.policy.backoff * 2 ** (retry_state.attempt_number - 1))
        # Jitter spreads the retries of concurrent workers so they do not return in one burst.
        return random.uniform(ceiling / 2, ceiling)


class TmdbClient:
    """GETs JSON from TMDB under a shared rate limit and concurrency cap, with classified retries."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        base_url: str,
        credentials: Credentials,
        limiter: AdaptiveRateLimiter,
        concurrency: int,
        timeout: float,
        policy: RetryPolicy,
        stage: str,
        counters: Counter[str],
        progress: Progress | None = None,
        sleep: Sleep = asyncio.sleep,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        in_flight: asyncio.Semaphore | None = None,
    ) -> None:
        """``in_flight`` shares one cap on requests in flight between clients (the feeds of one run)."""
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError(f"timeout must be a finite number of seconds above 0, got {timeout!r}")
        self.session = session
        self.max_body_bytes = max_body_bytes
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.limiter = limiter
        self.policy = policy
        self.stage = stage
        self.counters = counters
        self.progress = progress
        import aiohttp

        self._in_flight = in_flight if in_flight is not None else asyncio.Semaphore(concurrency)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._sleep = sleep

    async def get_json(self, path: str, params: Mapping[str, str], *, what: str, valid: Validator) -> Any:
        """The decoded JSON of ``GET path?params``, retried while transient; ``what`` names it in messages."""
        return (await self.get(path, params, what=what, valid=valid)).document

    async def get(self, path: str, params: Mapping[str, str], *, what: str, valid: Validator) -> Fetched:
        """``GET path?params`` with the body kept as received, retried while transient."""
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.policy.max_attempts),
            wait=_RetryWait(self.policy),
            retry=tenacity.retry_if_exception_type(TransientError),
            before_sleep=lambda state: self._before_sleep(state, what),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return await retrying(self._attempt, path, params, what, valid)
        except TmdbTransientError as exc:
            attempts = self.policy.max_attempts
            raise ExtractError(
                f"{what}: failed after {attempts} attempt{'s' if attempts != 1 else ''}: {exc.reason}",
                stage=self.stage,
            ) from exc

    def _before_sleep(self, state: tenacity.RetryCallState, what: str) -> None:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        cause = exc.cause if isinstance(exc, TmdbTransientError) else "other"
        reason = exc.reason if isinstance(exc, TmdbTransientError) else type(exc).__name__
        self.counters["retries"] += 1
        self.counters[f"retries_{cause}"] += 1
        if self.progress is not None:
            self.progress.retry()
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "%s: %s; retry %d of %d in %.2fs",
            what,
            reason,
            state.attempt_number,
            self.policy.max_attempts - 1,
            wait,
        )

    async def _attempt(self, path: str, params: Mapping[str, str], what: str, valid: Validator) -> Fetched:
        import aiohttp

        display = _display(path, params)
        query = {**params, **self.credentials.params()}
        failure: TmdbTransientError | TmdbApiError | None = None
        async with self._in_flight:
            await self.limiter.acquire()
            self.counters["requests"] += 1
            if self.progress is not None:
                self.progress.request()
            try:
                async with self.session.get(
                    f"{self.base_url}{path}",
                    params=query,
                    headers=self.credentials.headers(),
                    timeout=self._timeout,
                    allow_redirects=False,
                ) as response:
                    status, headers = response.status, response.headers
                    body = await self._read(response)
            except BodyTooLarge:
                failure = TmdbApiError(
                    f"{what}: the response body is larger than max_body_bytes ({self.max_body_bytes} bytes, "
                    f"after decompression) from GET {display}",
                    stage=self.stage,
                    http_status=status,
                )
            except TimeoutError:
                failure = self._transient(f"timed out after {self._timeout.total:g}s on GET {display}", "timeout")
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, ConnectionError) as exc:
                failure = self._transient(f"{_summarise(exc)} on GET {display}", "connection")
            except aiohttp.ClientError as exc:
                failure = TmdbApiError(f"{what}: {_summarise(exc)} on GET {display}", stage=self.stage)
            except Exception as exc:
                # Anything else from the HTTP layer is fatal; summarised, never chained, since its
                # text may hold the request URL and with it the api_key.
                failure = TmdbApiError(f"{what}: unexpected {_summarise(exc)} on GET {display}", stage=self.stage)
        # Raised outside the except blocks so that no aiohttp exception rides along as __context__.
        if failure is not None:
            raise failure
        return Fetched(self._classify(status, headers, body, what, display, valid), body, status, display)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, read chunk by chunk (aiohttp inflates gzip as it goes), never past ``max_body_bytes``."""
        limit = self.max_body_bytes
        declared = response.content_length
        if declared is not None and declared > limit and not response.headers.get("Content-Encoding"):
            raise BodyTooLarge()
        body = bytearray()
        async for chunk in response.content.iter_chunked(_READ_CHUNK):
            body += chunk
            if len(body) > limit:
                raise BodyTooLarge()
        return bytes(body)

    def _transient(self, reason: str, cause: Cause, retry_after: float | None = None) -> TmdbTransientError:
        return TmdbTransientError(redact(reason), cause=cause, stage=self.stage, retry_after=retry_after)

    def _classify(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        what: str,
        display: str,
        valid: Validator,
    ) -> Any:
        """The one decision: a payload, a ``TmdbTransientError`` to retry, or a fatal ``TmdbApiError``."""
        if status == 200:
            try:
                document = schema.parse_json(body)
            except (ValueError, UnicodeDecodeError) as exc:
                reason = f"invalid JSON in a 200 response ({len(body)} bytes: {exc}) from GET {display}"
                failure = self._transient(reason, "invalid_json")
            else:
                if valid(document):
                    return document
                failure = self._transient(f"unexpected JSON shape in a 200 response from GET {display}", "invalid_json")
            raise failure
        detail = _error_detail(headers, body)
        if status == 429 or status in RETRIABLE_STATUS:
            retry_after = parse_retry_after(headers.get("Retry-After"))
            if status == 429:
                self.counters["http_429"] += 1
                self.limiter.throttled(retry_after)
            cause: Cause = "429" if status == 429 else "5xx"
            raise self._transient(f"HTTP {status} ({detail}) from GET {display}", cause, retry_after)
        tmdb_code = _tmdb_code(body)
        raise TmdbApiError(
            redact(f"{what}: HTTP {status} ({detail}) from GET {display}"),
            stage=self.stage,
            http_status=status,
            tmdb_code=tmdb_code,
        )


def _display(path: str, params: Mapping[str, str]) -> str:
    """The request as it may appear in logs and messages: never with the secret."""
    public = {k: v for k, v in params.items() if k != "api_key"}
    return f"{path}?{urlencode(public)}" if public else path


def _summarise(exc: BaseException) -> str:
    """An aiohttp exception in words, without its URL or request_info."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{type(exc).__name__}: {exc.status} {exc.message}"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"{type(exc).__name__}: invalid URL"
    text = redact(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _tmdb_code(body: bytes) -> int | None:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    code = document.get("status_code") if isinstance(document, dict) else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _error_detail(headers: Mapping[str, str], body: bytes) -> str:
    """TMDB's ``status_code``/``status_message`` if the body has them, else a short snippet of the body."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        document = None
    if isinstance(document, dict) and ("status_code" in document or "status_message" in document):
        return f"TMDB status_code {document.get('status_code')}: {document.get('status_message')}"
    content_type = headers.get("Content-Type", "unknown type").split(";")[0]
    if not body:
        return f"empty {content_type} body"
    text = body.decode("utf-8", errors="replace")
    if "html" in content_type or text.lstrip().startswith("<"):
        text = _TAGS.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    if len(text) > _SNIPPET:
        text = text[: _SNIPPET - 1] + "…"
    return f"non-JSON {content_type} body: {redact(text)!r}"
