"""The TMDB client's small contracts: credentials and their registration, error attributes, messages, retry waits."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aioresponses import aioresponses

from pipeline import redact as redact_module
from pipeline.errors import ConfigError, ExtractError
from pipeline.options import build_options
from pipeline.redact import MASK, redact
from pipeline.stage import RunContext
from stages.tmdb import TmdbOptions, TmdbTrendingExtractor
from stages.tmdb_client import Credentials, RetryPolicy, TmdbApiError

pytestmark = pytest.mark.usefixtures("aioresponses_compat")

BASE = "https://tmdb.test"
TRENDING = re.compile(r"^https://tmdb\.test/3/trending/movie/day(\?.*)?$")
TOKEN = "tok-client-0123456789abcdef"
KEY = "key-client-fedcba9876543210"


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Secrets registered here go into a registry of this test's own."""
    monkeypatch.setattr(redact_module, "_secrets", set())
    yield


async def _no_sleep(seconds: float) -> None:
    """Retry waits return at once."""


def extractor(context: RunContext, **options: Any) -> TmdbTrendingExtractor:
    raw = {"base_url": BASE, "enrich": False, "rate_limit": 1000, "max_attempts": 2, "backoff": 0, **options}
    return TmdbTrendingExtractor(
        build_options(TmdbOptions, raw, "extractor.options"),
        context,
        name="tmdb-trending",
        sleep=_no_sleep,
        env={"TMDB_ACCESS_TOKEN": TOKEN},
    )


async def failure(context: RunContext, **response: Any) -> ExtractError:
    """The error a run ends with when every trending request gets ``response``."""
    with aioresponses() as mocked:
        mocked.get(TRENDING, repeat=True, **response)
        ex = extractor(context)
        with pytest.raises(ExtractError) as caught:
            async with ex:
                _ = [batch async for batch in ex.batches()]
    return caught.value


# -- credentials ------------------------------------------------------------------------
def test_both_secrets_are_registered_even_though_only_the_token_is_sent() -> None:
    credentials = Credentials.from_env({"TMDB_ACCESS_TOKEN": f" {TOKEN} ", "TMDB_API_KEY": KEY})
    assert (credentials.bearer, credentials.api_key) == (TOKEN, None)
    assert redact(f"{TOKEN} {KEY}") == f"{MASK} {MASK}"


def test_the_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMDB_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv("TMDB_API_KEY", KEY)
    assert Credentials.from_env().api_key == KEY


@pytest.mark.parametrize("env", [{}, {"TMDB_ACCESS_TOKEN": "", "TMDB_API_KEY": " "}], ids=["unset", "blank"])
def test_no_secret_at_all_is_a_config_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="no TMDB credentials: set TMDB_ACCESS_TOKEN"):
        Credentials.from_env(env)


@pytest.mark.parametrize(
    ("credentials", "scheme", "headers", "params"),
    [
        (Credentials(bearer=TOKEN), "v4 token in the Authorization header", {"Authorization": f"Bearer {TOKEN}"}, {}),
        (Credentials(api_key=KEY), "v3 key in the api_key query parameter", {}, {"api_key": KEY}),
        (
            Credentials(bearer=TOKEN, api_key=KEY),
            "v4 token in the Authorization header",
            {"Authorization": f"Bearer {TOKEN}"},
            {},  # the token wins: the key is never sent along with it
        ),
    ],
    ids=["token", "key", "both"],
)
def test_how_each_secret_is_sent(
    credentials: Credentials, scheme: str, headers: dict[str, str], params: dict[str, str]
) -> None:
    assert credentials.scheme == scheme
    assert (credentials.headers(), credentials.params()) == (headers, params)
    assert repr(credentials) == f"Credentials(<{scheme}>)"


# -- fatal errors -----------------------------------------------------------------------
async def test_a_fatal_error_carries_the_http_status_and_tmdb_code(live_context: RunContext) -> None:
    error = await failure(live_context, status=404, payload={"status_code": 34, "status_message": "not found"})
    assert isinstance(error, TmdbApiError)
    assert (error.http_status, error.tmdb_code) == (404, 34)


# -- retry policy ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1, got 0"),
        ({"backoff": -0.5}, "backoff must be a finite number of seconds, at least 0, got -0.5"),
        ({"max_backoff": math.inf}, "max_backoff must be a finite number of seconds, at least 0, got inf"),
        ({"backoff": math.nan}, "backoff must be a finite number of seconds, at least 0, got nan"),
    ],
)
def test_a_bad_retry_policy_is_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_one_attempt_and_no_backoff_are_a_valid_policy() -> None:
    assert RetryPolicy(max_attempts=1, backoff=0, max_backoff=0) == RetryPolicy(1, 0.0, 0.0)


async def test_a_single_attempt_gives_up_at_once_and_says_attempt(live_context: RunContext) -> None:
    with aioresponses() as mocked:
        mocked.get(TRENDING, status=503, payload={"status_code": 9, "status_message": "offline"}, repeat=True)
        ex = extractor(live_context, max_attempts=1)
        with pytest.raises(ExtractError) as caught:
            async with ex:
                _ = [batch async for batch in ex.batches()]
    assert str(caught.value) == (
        "extractor 'tmdb-trending': page 1: failed after 1 attempt: "
        "HTTP 503 (TMDB status_code 9: offline) from GET /3/trending/movie/day?page=1"
    )
    assert ex.counters["requests"] == 1 and ex.counters["retries"] == 0
