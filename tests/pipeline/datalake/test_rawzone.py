"""The raw zone's line format, edge by edge: response records and lookups lines."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

import pytest

from pipeline.datalake.rawzone import (
    RawPage,
    RawRecordError,
    dumps,
    is_record,
    lookups_document,
    page_line,
    parse_lookups,
    parse_record,
)
from pipeline.stage import Batch, Feed, Lookups

BODY = '{"page":2,"results":[{"title":"Amélie"}]}'.encode()
SHA = hashlib.sha256(BODY).hexdigest()
FETCHED = dt.datetime(2026, 11, 25, 13, 0, 3, 120000, tzinfo=dt.timezone(dt.timedelta(hours=1)))


def _batch(body: bytes | None = BODY, **changes: Any) -> Batch:
    fields: dict[str, Any] = {
        "page": 2,
        "payload": {"page": 2, "results": [{"title": "Amélie"}]},
        "feed": Feed(),
        "extracted_at": FETCHED,
        "body": body,
        "status": 200,
        "request": "/3/trending/movie/day?page=2",
    }
    return Batch(**{**fields, **changes})


_DROP = object()


def _record(**changes: Any) -> dict[str, Any]:
    record = json.loads(page_line(_batch()))
    record.update(changes)
    return {k: v for k, v in record.items() if v is not _DROP}


def test_a_page_line_is_one_compact_utf8_json_line_with_the_body_verbatim() -> None:
    expected = (
        '{"v":1,"page":2,"fetched_at":"2026-11-25T12:00:03.120000+00:00","status":200,'
        '"request":"/3/trending/movie/day?page=2","sha256":"' + SHA + '",'
        '"body":"{\\"page\\":2,\\"results\\":[{\\"title\\":\\"Amélie\\"}]}"}\n'
    ).encode()
    assert page_line(_batch()) == expected


def test_a_page_without_its_bytes_archives_the_payload_compactly() -> None:
    record = json.loads(page_line(_batch(body=None, payload={"page": 2, "results": ["é"]})))
    assert record["body"] == '{"page":2,"results":["é"]}'
    assert record["sha256"] == hashlib.sha256('{"page":2,"results":["é"]}'.encode()).hexdigest()


def test_a_body_that_is_not_utf8_is_archived_as_base64_and_reads_back() -> None:
    body = b'{"page":1,"x":"\xff"}'
    record = json.loads(page_line(_batch(body=body, page=1)))
    assert "body" not in record
    assert record["body_base64"] == base64.b64encode(body).decode("ascii")
    with pytest.raises(RawRecordError, match="not JSON"):
        parse_record(record)  # the bytes come back, and json refuses them as it did the original


def test_dumps_keeps_text_unescaped_and_ends_the_line() -> None:
    assert dumps({"a": "é", "b": [1, 2]}) == '{"a":"é","b":[1,2]}\n'.encode()


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"sha256": "x", "body": ""}, True),
        ({"sha256": "x", "body_base64": ""}, True),
        ({"sha256": "x"}, False),
        ({"body": "", "body_base64": ""}, False),
        ({"page": 1, "results": []}, False),
        ({"lookups": {}}, False),
    ],
)
def test_what_counts_as_a_response_record(document: dict[str, Any], expected: bool) -> None:
    assert is_record(document) is expected


def test_a_record_reads_back_as_the_page_it_archived() -> None:
    assert parse_record(_record()) == RawPage(
        page=2,
        document={"page": 2, "results": [{"title": "Amélie"}]},
        body=BODY,
        fetched_at=FETCHED,
        status=200,
        request="/3/trending/movie/day?page=2",
    )


def test_page_one_and_an_upper_case_digest_are_accepted() -> None:
    assert parse_record(_record(page=1, sha256=SHA.upper())).page == 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": _DROP}, "does not match its sha256"),
        ({"sha256": 5}, "does not match its sha256"),
        ({"sha256": "0" * 64}, "does not match its sha256"),
        ({"page": _DROP}, "invalid 'page'"),
        ({"page": True}, "invalid 'page'"),
        ({"page": "2"}, "invalid 'page'"),
        ({"page": 0}, "invalid 'page'"),
        ({"fetched_at": _DROP}, "missing 'fetched_at'"),
        ({"fetched_at": 5}, "missing 'fetched_at'"),
        ({"fetched_at": "yesterday"}, "invalid 'fetched_at'"),
        ({"fetched_at": "2026-11-25T12:00:03"}, "no UTC offset"),
        ({"body": _DROP}, "has no 'body' text"),
        ({"body": 5}, "has no 'body' text"),
    ],
)
def test_a_damaged_record_is_refused_with_its_reason(change: dict[str, Any], message: str) -> None:
    with pytest.raises(RawRecordError, match=message):
        parse_record(_record(**change))


def _with_body(body: bytes, **changes: Any) -> dict[str, Any]:
    return _record(body=body.decode(), sha256=hashlib.sha256(body).hexdigest(), **changes)


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"[1, 2]", "not a JSON object"), (b"{not json", "not JSON"), (b'"text"', "not a JSON object")],
)
def test_a_body_that_is_not_a_json_object_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(RawRecordError, match=message):
        parse_record(_with_body(body))


def test_a_body_that_is_not_unicode_text_is_refused() -> None:
    with pytest.raises(RawRecordError, match="not valid Unicode"):
        parse_record(_record(body="{\ud800}"))


def test_base64_is_read_strictly() -> None:
    encoded = base64.b64encode(BODY).decode("ascii")
    assert parse_record(_record(body=_DROP, body_base64=encoded)).body == BODY
    with pytest.raises(RawRecordError, match="not valid base64"):
        parse_record(_record(body=_DROP, body_base64="*" + encoded))


@pytest.mark.parametrize(
    ("status", "path", "expected"),
    [(404, 5, (404, None)), (True, "/x", (None, "/x")), ("200", None, (None, None)), (_DROP, _DROP, (None, None))],
)
def test_a_status_and_a_request_of_the_wrong_type_read_as_none(
    status: Any, path: Any, expected: tuple[Any, Any]
) -> None:
    page = parse_record(_record(status=status, request=path))
    assert (page.status, page.request) == expected


@pytest.mark.parametrize(
    ("lookups", "expected"),
    [
        (Lookups(), None),
        (
            Lookups({28: "Action", 12: "Adventure"}),
            {
                "lookups": {
                    "genres": [{"id": 12, "name": "Adventure"}, {"id": 28, "name": "Action"}],
                    "poster_base_url": None,
                }
            },
        ),
        (Lookups({}, "https://img/w500"), {"lookups": {"genres": [], "poster_base_url": "https://img/w500"}}),
    ],
)
def test_a_lookups_line_exists_only_when_there_is_something_to_record(
    lookups: Lookups, expected: dict[str, Any] | None
) -> None:
    assert lookups_document(lookups) == expected


def test_lookups_read_back_as_they_were_written() -> None:
    lookups = Lookups({12: "Adventure", 28: "Action"}, "https://img/w500")
    document = lookups_document(lookups)
    assert document is not None
    assert parse_lookups(json.loads(dumps(document))) == lookups


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"page": 1, "results": []}, None),
        ({"lookups": [1]}, None),
        ({"lookups": {}}, Lookups()),
        ({"lookups": {"genres": None, "poster_base_url": ""}}, Lookups()),
        (
            {"lookups": {"genres": [{"id": "7", "name": 9}, {"id": 8}, {"name": "x"}], "poster_base_url": "b"}},
            Lookups({7: "9"}, "b"),
        ),
    ],
)
def test_a_lookups_line_missing_parts_reads_as_far_as_it_goes(
    document: dict[str, Any], expected: Lookups | None
) -> None:
    assert parse_lookups(document) == expected
