"""``s3_errors``: which S3 answers certainly left a write unapplied, and the one line each error becomes."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipeline.errors import CommitConflict, LoadError, TransientLoadError
from stages.loaders.s3_errors import S3Errors, code, refused_at_once, translate
from stages.loaders.s3_options import S3Options
from stages.loaders.s3_store import S3Store
from tests.support.fixtures_s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY


def answer(status: int, error: str, retries: int = 0) -> ClientError:
    """What botocore raises for an HTTP ``status`` with S3's ``error`` code, after ``retries`` retries."""
    response: Any = {
        "Error": {"Code": error, "Message": "injected"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
    }
    return ClientError(response, "PutObject")


@pytest.mark.parametrize(
    ("status", "error", "retries", "refused"),
    [
        (412, "PreconditionFailed", 0, True),  # the condition failed: nothing was written
        (403, "AccessDenied", 0, True),
        (400, "InvalidArgument", 0, True),
        (499, "ClientClosed", 0, True),
        (503, "SlowDown", 0, True),  # S3 sheds the request before it stores anything
        (500, "InternalError", 0, False),  # may come after the write
        (502, "BadGateway", 0, False),
        (504, "GatewayTimeout", 0, False),
        (399, "Odd", 0, False),
        (412, "PreconditionFailed", 1, False),  # a retry: the first attempt may have been applied
        (503, "SlowDown", 2, False),
    ],
)
def test_only_a_refusal_of_the_only_attempt_is_certainly_unapplied(
    status: int, error: str, retries: int, refused: bool
) -> None:
    exc = answer(status, error, retries)
    assert refused_at_once(exc) is refused
    translated = translate(exc, "upload", "b", "k", stage="s3", endpoint=None)
    assert translated.applied is (False if refused else None)
    assert str(translated) == f"loader 's3': cannot upload s3://b/k: {error}: " + (
        "access denied (the IAM policy does not allow this action on this key; see docs/aws.md)"
        if error == "AccessDenied"
        else "injected"
    )
    assert isinstance(translated, TransientLoadError) is (error in ("SlowDown", "InternalError"))


def test_missing_metadata_is_not_a_certain_refusal() -> None:
    assert refused_at_once(ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")) is False
    assert code(ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject")) == "NoSuchKey"
    assert code(ValueError("not botocore")) == ""


async def test_a_failed_condition_is_a_conflict_that_says_whether_it_is_certain() -> None:
    errors = S3Errors("b", "s3", None)

    async def refuse(exc: ClientError) -> None:
        raise exc

    for retries, certain in ((0, False), (1, None)):
        with pytest.raises(CommitConflict, match=r"s3://b/k changed \(PreconditionFailed\)") as caught:
            await errors.call(refuse(answer(412, "PreconditionFailed", retries)), "upload", "k", conflict=True)
        assert caught.value.applied is certain
    assert await errors.call(refuse(answer(404, "NoSuchKey")), "read", "k", absent={"NoSuchKey"}) is None
    with pytest.raises(LoadError, match="cannot read s3://b/k: NoSuchKey") as plain:
        await errors.call(refuse(answer(404, "NoSuchKey")), "read", "k")
    assert not isinstance(plain.value, CommitConflict)


async def test_a_store_that_opens_its_own_client_names_the_endpoint_botocore_chose(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)  # not in the options: botocore finds it
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    async with S3Store(S3Options(bucket="some-bucket"), stage="s3") as store:
        with pytest.raises(TransientLoadError) as caught:
            await store.put_object("a.json", b"{}", "application/json")
    message = str(caught.value)
    assert message == (
        f"loader 's3': cannot upload s3://some-bucket/a.json: cannot reach {endpoint} (EndpointConnectionError)"
    )
    assert SECRET_ACCESS_KEY not in message and ACCESS_KEY_ID not in message
