"""Secret masking: registered secrets (every length rule and form), the log filter and traceback redaction."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from pipeline import redact as redact_module
from pipeline.redact import MASK, SECRET_ENV_VARS, RedactingFilter, redact, register_env_secrets, register_secret

SECRET = "s3cr/et tok+en"


pytestmark = pytest.mark.usefixtures("no_secrets")


def test_a_registered_secret_is_masked_as_is_and_in_every_url_encoding() -> None:
    register_secret(SECRET)
    forms = [SECRET, "s3cr%2Fet%20tok%2Ben", "s3cr/et%20tok%2Ben", "s3cr%2Fet+tok%2Ben", "s3cr%2fet%20tok%2ben"]
    for form in forms:
        assert redact(f"<{form}>") == f"<{MASK}>", form


def test_surrounding_whitespace_of_a_secret_is_not_needed_to_mask_it() -> None:
    register_secret("  padded-secret\n")
    assert redact("key=padded-secret;") == f"key={MASK};"


@pytest.mark.parametrize(
    ("value", "masked"),
    [("abcd", True), ("abc", False), ("", False), (None, False)],
    ids=["four characters: registered", "three: too short to mask safely", "empty", "unset"],
)
def test_secrets_of_four_characters_or_more_are_registered(value: str | None, masked: bool) -> None:
    register_secret(value)
    assert (redact("x abcd abc y") == f"x {MASK} abc y") is masked
    assert redact_module._secrets == ({"abcd"} if masked else set())


def test_a_secret_that_contains_another_is_masked_whole() -> None:
    register_secret("token-1234")
    register_secret("token-1234-and-more")
    assert redact("sent token-1234-and-more") == f"sent {MASK}"


def test_environment_secrets_are_registered_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SECRET_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-from-env")
    monkeypatch.setenv("GITHUB_TOKEN", "gh-token-from-env")
    monkeypatch.setenv("HOME_NOT_A_SECRET", "not-a-secret-value")
    register_env_secrets()
    text = "aws-secret-from-env gh-token-from-env not-a-secret-value"
    assert redact(text) == f"{MASK} {MASK} not-a-secret-value"


def test_environment_secrets_from_a_given_mapping() -> None:
    register_env_secrets({"TMDB_API_KEY": "key-from-mapping", "OTHER": "other-value"})
    assert redact("key-from-mapping other-value") == f"{MASK} other-value"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GET /3/x?page=2&api_key=abc123&language=en", f"GET /3/x?page=2&api_key={MASK}&language=en"),
        (
            "https://h/p?X-Amz-Security-Token=IQoJb3J&Signature=abc",
            f"https://h/p?X-Amz-Security-Token={MASK}&Signature={MASK}",
        ),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload", f"Authorization: Bearer {MASK}"),
        ("a bearer token is sent in a header", "a bearer token is sent in a header"),
    ],
    ids=["api_key query value", "S3 presigned query", "Bearer header", "prose is left alone"],
)
def test_unregistered_query_secrets_and_bearer_tokens_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


# -- the log filter ----------------------------------------------------------------------
@pytest.fixture
def filtered_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose one handler carries the ``RedactingFilter``, writing to a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger("tests.redact")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log, stream
    log.removeHandler(handler)
    log.propagate = True


def test_the_filter_masks_secrets_in_the_rendered_message(filtered_log: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = filtered_log
    register_secret(SECRET)
    log.warning("GET %s failed with key %s", "/3/x?api_key=k", SECRET)
    assert stream.getvalue() == f"WARNING GET /3/x?api_key={MASK} failed with key {MASK}\n"


def test_the_filter_leaves_a_clean_record_untouched() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "page %d of %d", (2, 5), None)
    assert RedactingFilter().filter(record) is True
    assert (record.msg, record.args) == ("page %d of %d", (2, 5))
    assert record.exc_text is None


def test_the_filter_replaces_a_dirty_record_by_its_masked_text() -> None:
    register_secret(SECRET)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "key %s", (SECRET,), None)
    assert RedactingFilter().filter(record) is True
    assert (record.msg, record.args) == (f"key {MASK}", None)


def test_the_filter_masks_secrets_in_a_logged_traceback(filtered_log: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = filtered_log
    register_secret(SECRET)
    try:
        raise RuntimeError(f"request to /3/x?api_key={SECRET} failed")
    except RuntimeError:
        log.exception("extract failed")
    output = stream.getvalue()
    assert output.startswith("ERROR extract failed\nTraceback (most recent call last):")
    assert f"RuntimeError: request to /3/x?api_key={MASK} failed" in output
    assert SECRET not in output and "s3cr" not in output


def test_the_filter_masks_an_exception_that_was_never_raised(filtered_log: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = filtered_log
    register_secret(SECRET)
    log.error("gave up", exc_info=ValueError(f"bad token {SECRET}"))  # no traceback: exc_info[2] is None
    assert stream.getvalue() == f"ERROR gave up\nValueError: bad token {MASK}\n"


def test_the_filter_ignores_an_empty_exc_info() -> None:
    # What logging records for exc_info=True outside an except block.
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "no exception here", None, (None, None, None))
    assert RedactingFilter().filter(record) is True
    assert record.exc_text is None
