"""The TMDB secret never shows up: not in logs, exceptions, tracebacks, the result, the lake or the report."""

from __future__ import annotations

import gzip
import logging
import traceback
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from pipeline.errors import PipelineError
from pipeline.runner import run_pipeline
from tests.support.tmdb import BASE, CONFIGURATION, GENRES, TRENDING, request_info

pytestmark = pytest.mark.usefixtures("aioresponses_compat")

SECRET = "S3cr3t-tmdb-key-0f1e2d3c4b5a"
LEAKY_URL = f"{BASE}/3/trending/movie/day?page=1&api_key={SECRET}"


def _page(page: int) -> dict[str, Any]:
    results = [{"id": page * 100 + i, "title": f"T{i}", "popularity": 1.0, "media_type": "movie"} for i in range(20)]
    return {"page": page, "results": results, "total_pages": 2, "total_results": 40}


FAILURES: list[tuple[str, dict[str, Any]]] = [
    ("401", {"status": 401, "payload": {"status_code": 7, "status_message": "Invalid API key"}}),
    ("404", {"status": 404, "payload": {"status_code": 34, "status_message": "Not found"}}),
    ("400", {"status": 400, "payload": {"status_code": 22, "status_message": "Invalid page"}}),
    ("429", {"status": 429, "headers": {"Retry-After": "0"}}),
    ("500", {"status": 500, "payload": {"status_code": 11, "status_message": "Internal error"}}),
    # A CDN error page that echoes the request URL, key and all.
    (
        "html 502 echoing the URL",
        {"status": 502, "body": f"<html>bad gateway for {LEAKY_URL}</html>", "content_type": "text/html"},
    ),
    ("404 echoing the URL", {"status": 404, "payload": {"status_code": 34, "status_message": LEAKY_URL}}),
    ("reset", {"exception": aiohttp.ClientOSError(104, f"Connection reset on {LEAKY_URL}")}),
    ("disconnect", {"exception": aiohttp.ServerDisconnectedError()}),
    ("timeout", {"exception": TimeoutError()}),
    ("truncated json", {"status": 200, "body": '{"page": 1, "res', "content_type": "application/json"}),
    (
        "ClientResponseError with the URL",
        {"exception": aiohttp.ClientResponseError(request_info(LEAKY_URL), (), status=418)},
    ),
    ("InvalidURL", {"exception": aiohttp.InvalidURL(LEAKY_URL)}),
    ("connection error naming the URL", {"exception": aiohttp.ClientConnectionError(f"cannot reach {LEAKY_URL}")}),
    ("unexpected error naming the URL", {"exception": RuntimeError(f"surprise at {LEAKY_URL}")}),
]


def secrets_config(tmp_path: Path, **extractor: Any) -> dict[str, Any]:
    options = {"base_url": BASE, "pages": 2, "max_attempts": 2, "backoff": 0, "max_backoff": 0, "rate_limit": 500}
    return {
        "extractor": {"type": "tmdb-trending", "options": {**options, **extractor}},
        "transformer": {"type": "standardize"},
        "loader": {"type": "local", "options": {"root": str(tmp_path / "lake")}},
        "reporter": {"type": "markdown", "options": {"path": str(tmp_path / "LATEST_UPDATE.md")}},
    }


def _exception_text(exc: BaseException) -> str:
    """Everything an exception can show: the formatted chain, and str/repr/args of every link."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        link = todo.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        parts += [str(link), repr(link), repr(link.args), repr(vars(link)) if hasattr(link, "__dict__") else ""]
        todo += [link.__cause__, link.__context__]
    return "\n".join(parts)


def _files_text(root: Path) -> str:
    texts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        texts.append(gzip.decompress(data).decode() if path.suffix == ".gz" else data.decode(errors="replace"))
    return "\n".join(texts)


@pytest.fixture(params=["TMDB_API_KEY", "TMDB_ACCESS_TOKEN"])
def secret_env(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The secret, set once as the v3 key (in the URL) and once as the v4 token (in a header)."""
    monkeypatch.delenv("TMDB_API_KEY", raising=False)
    monkeypatch.delenv("TMDB_ACCESS_TOKEN", raising=False)
    monkeypatch.setenv(request.param, SECRET)
    return str(request.param)


@pytest.mark.parametrize(("label", "failure"), FAILURES, ids=[f[0] for f in FAILURES])
@pytest.mark.parametrize("failing_page", [1, 2])
async def test_secret_absent_on_every_failure_path(
    secret_env: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    label: str,
    failure: dict[str, Any],
    failing_page: int,
) -> None:
    caplog.set_level(logging.DEBUG)
    with aioresponses() as mocked:
        mocked.get(CONFIGURATION, payload={"images": {"secure_base_url": "https://img.test/"}})
        mocked.get(GENRES, payload={"genres": [{"id": 28, "name": "Action"}]})
        if failing_page == 2:
            mocked.get(TRENDING, payload=_page(1))
        mocked.get(TRENDING, repeat=True, **failure)
        with pytest.raises(PipelineError) as caught:
            await run_pipeline(secrets_config(tmp_path))
    text = _exception_text(caught.value)
    assert f"page {failing_page}" in text  # the failure is reported, just without the secret
    logs = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "nothing was logged, so the log check would prove nothing"
    assert SECRET not in text
    assert SECRET not in logs
    assert SECRET not in _files_text(tmp_path)


async def test_secret_absent_from_result_lake_report_and_logs_on_success(
    secret_env: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with aioresponses() as mocked:
        mocked.get(CONFIGURATION, payload={"images": {"secure_base_url": "https://img.test/"}})
        mocked.get(GENRES, payload={"genres": [{"id": 28, "name": "Action"}]})
        mocked.get(TRENDING, status=503, headers={"Retry-After": "0"})
        mocked.get(TRENDING, payload=_page(1))
        mocked.get(TRENDING, payload=_page(2))
        result = await run_pipeline(secrets_config(tmp_path))
        urls = [str(url) for (_method, url) in mocked.requests]
    assert result.rows == 40 and result.counters["retries_5xx"] == 1
    sent_in_url = any(SECRET in url for url in urls)
    assert sent_in_url == (secret_env == "TMDB_API_KEY")  # the key really was in play
    files = _files_text(tmp_path)
    assert (tmp_path / "LATEST_UPDATE.md").exists()
    assert SECRET not in files
    assert SECRET not in repr(result) and SECRET not in str(result.to_dict())
    assert SECRET not in caplog.text + "\n".join(r.getMessage() for r in caplog.records)
