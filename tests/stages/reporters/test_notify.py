"""``notify``: apprise's ``json://`` target against a local HTTP server; no secret in the message or the logs."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from pipeline.stage import Feed, RunResult
from stages.reporters import report_model as rm
from stages.reporters.notify import digest
from tests.support.cli import CliRunner, error_lines
from tests.support.fixtures_tmdb import StandinFactory
from tests.support.sample import write_config as write_document
from tests.support.tmdb_standin import TmdbStandin

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tests" / "data" / "sample"
PASSWORD = "hunter2-notify-password"
PATH_TOKEN = "T0k3nInThePath-9f8e7d6c"


class Inbox:
    """A local webhook: records each POST's JSON body and Authorization header; answers ``status``."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.auth: list[str] = []
        self.status = 200
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self.auth.append(request.headers.get("Authorization", ""))
        return web.Response(status=self.status, text="{}")

    def url(self, scheme: str = "json") -> str:
        """An apprise URL with a password and a path token, both secrets."""
        return f"{scheme}://bot:{PASSWORD}@127.0.0.1:{self.port}/hooks/{PATH_TOKEN}"


@pytest.fixture
async def inbox() -> AsyncIterator[Inbox]:
    box = Inbox()
    app = web.Application()
    app.router.add_post("/{tail:.*}", box.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    box.port = runner.addresses[0][1]
    yield box
    await runner.cleanup()


def write_config(tmp_path: Path, pages: Path, notify: dict[str, Any]) -> Path:
    """Replay ``pages`` → standardize → a local lake → markdown and notify reporters."""
    document = {
        "extractor": {"type": "replay", "options": {"path": str(pages)}},
        "transformer": {"type": "standardize"},
        "loader": {"type": "local", "options": {"root": str(tmp_path / "lake")}},
        "reporter": [
            # the chart is not what these tests are about, and drawing it costs about a second a run
            {"type": "markdown", "options": {"path": str(tmp_path / "report.md"), "chart": False}},
            {"type": "notify", "options": notify},
        ],
    }
    path = tmp_path / "pipeline.yml"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def broken_pages(tmp_path: Path) -> Path:
    """A replay folder whose second page is cut short: the run fails after it began writing the day."""
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "page-001.json").write_bytes((SAMPLE / "2026-11-25" / "page-001.json").read_bytes())
    (folder / "page-002.json").write_text('{"page": 2, "results": [', encoding="utf-8")
    return folder


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and PATH_TOKEN not in text


async def test_a_failed_run_sends_one_message_with_the_one_line_error_and_no_secret(
    tmp_path: Path, run_cli: CliRunner, inbox: Inbox
) -> None:
    path = write_config(tmp_path, broken_pages(tmp_path), {"url": "${NOTIFY_URL}"})

    done = await asyncio.to_thread(
        run_cli, "run", "-v", "--config", str(path), "--date", "2026-11-25", env={"NOTIFY_URL": inbox.url()}
    )

    assert done.returncode == 1
    [error_line] = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    [message] = inbox.received
    assert message["type"] == "failure"
    assert message["title"] == "TMDB trending: 2026-11-25 failed"
    assert message["message"] == error_line.removeprefix("error: ")
    assert "nothing was committed" in message["message"]
    # apprise used the secret (basic auth), and nothing we print or send carries it
    assert inbox.auth == ["Basic " + base64.b64encode(f"bot:{PASSWORD}".encode()).decode()]
    assert_no_secret(json.dumps(message), done.stdout, done.stderr)


async def test_a_success_digest_lists_the_top_three_and_the_biggest_climber(
    tmp_path: Path, run_cli: CliRunner, inbox: Inbox
) -> None:
    notify = {"url": inbox.url(), "on_success": True}
    first = write_config(tmp_path, SAMPLE / "2026-11-24", notify)
    done = await asyncio.to_thread(run_cli, "run", "--config", str(first), "--date", "2026-11-24")
    assert done.returncode == 0, done.stderr
    second = write_config(tmp_path, SAMPLE / "2026-11-25", notify)

    done = await asyncio.to_thread(run_cli, "run", "-v", "--config", str(second), "--date", "2026-11-25")

    assert done.returncode == 0, done.stderr
    assert [m["type"] for m in inbox.received] == ["success", "success"]
    first_day, message = inbox.received[0]["message"], inbox.received[1]["message"]
    assert first_day.endswith("Biggest climber: none yet (the first day in the lake)")
    assert inbox.received[1]["title"] == "TMDB trending: 2026-11-25 committed"
    lines = message.splitlines()
    today, before = cleaned(tmp_path, "2026-11-25"), cleaned(tmp_path, "2026-11-24")
    top3 = today.sort_values("rank").drop_duplicates("id").head(3)
    assert lines[1:4] == [f"{r.rank}. {' '.join(r.title.split())} ({r.release_date[:4]})" for r in top3.itertuples()]
    joined = today.merge(before, on="id", suffixes=("", "_before"))
    joined["gain"] = joined["rank_before"] - joined["rank"]
    best = joined.sort_values(["gain", "rank"], ascending=[False, True]).iloc[0]
    assert lines[4] == (
        f"Biggest climber: {' '.join(best.title.split())}, #{best.rank_before} → #{best['rank']} "
        f"(+{best.gain} since 2026-11-24)"
    )
    assert "report:notify" in done.stdout and "json://…" in done.stdout
    assert_no_secret(json.dumps(inbox.received), done.stdout, done.stderr)


def cleaned(tmp_path: Path, day: str) -> pd.DataFrame:
    """A committed day's cleaned CSV, read on its own (not through the loader)."""
    (path,) = (tmp_path / "lake" / "cleaned_data").rglob(f"{day}_movies.csv")
    return pd.read_csv(path, keep_default_na=False, dtype={"release_date": str})


async def test_without_a_url_nothing_is_sent_and_check_says_so(
    tmp_path: Path, run_cli: CliRunner, inbox: Inbox
) -> None:
    path = write_config(tmp_path, broken_pages(tmp_path), {"url": "${NOTIFY_URL:-}", "on_success": True})

    checked = await asyncio.to_thread(run_cli, "check", "--config", str(path))
    failed = await asyncio.to_thread(run_cli, "run", "--config", str(path), "--date", "2026-11-25")

    assert checked.returncode == 0, checked.stdout
    assert "url          empty: notifications are off" in checked.stdout
    assert failed.returncode == 1
    assert inbox.received == []


async def test_an_undelivered_failure_message_is_a_warning_and_the_run_keeps_its_own_error(
    tmp_path: Path, run_cli: CliRunner, inbox: Inbox
) -> None:
    inbox.status = 500
    path = write_config(tmp_path, broken_pages(tmp_path), {"url": inbox.url()})

    done = await asyncio.to_thread(run_cli, "run", "--config", str(path), "--date", "2026-11-25")

    assert done.returncode == 1
    assert len(inbox.received) == 1
    assert "could not deliver the failure message to json://…" in done.stderr
    [error_line] = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert "page-002.json" in error_line
    assert_no_secret(done.stdout, done.stderr)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(f"nosuch://{PATH_TOKEN}@host/x", "scheme 'nosuch'", id="unknown-scheme"),
        pytest.param(f"{PATH_TOKEN}-not-a-url", "scheme '(none)'", id="no-scheme"),
    ],
)
def test_a_url_apprise_refuses_is_a_config_error_naming_the_scheme_only(
    tmp_path: Path, run_cli: CliRunner, url: str, expected: str
) -> None:
    path = write_config(tmp_path, SAMPLE / "2026-11-25", {"url": url})

    done = run_cli("check", "--config", str(path))

    assert done.returncode == 2
    assert expected in done.stdout
    assert PATH_TOKEN not in done.stdout + done.stderr


def test_secret_parts_of_the_url_are_masked_in_any_log_line(caplog: pytest.LogCaptureFixture) -> None:
    """The redacting filter the CLI installs masks the password and the path token wherever they show up."""
    from pipeline.redact import RedactingFilter
    from stages.reporters.notify import NotifyOptions

    NotifyOptions(url=f"json://bot:{PASSWORD}@127.0.0.1:1/hooks/{PATH_TOKEN}")
    record = logging.LogRecord("apprise", logging.DEBUG, __file__, 1, "POST %s", (f"/hooks/{PATH_TOKEN}",), None)

    RedactingFilter().filter(record)

    assert record.getMessage() == "POST /hooks/***"


@given(st.lists(st.text(max_size=40), min_size=1, max_size=3))
def test_a_digest_has_one_line_per_title_whatever_the_titles_hold(titles: list[str]) -> None:
    """TMDB text is untrusted: a line break in a title must not forge a line of the message."""
    entries = tuple(
        rm.Entry(i + 1, i, title, "", "", 1.0, 0.0, 0, "", previous_rank=i + 2) for i, title in enumerate(titles)
    )
    result = RunResult("r", pd.Timestamp("2026-11-25").date(), Feed(), pd.Timestamp("2026-11-25", tz="UTC"))
    movement = rm.Movement(previous_date=result.trend_date, top=entries, climbers=entries[:1])
    report = rm.Report(result=result, lake="lake", total=len(entries), top_n=3, movement=movement)

    lines = digest(report).splitlines()

    assert len(lines) == 2 + len(entries)
    assert lines[-1].startswith("Biggest climber: ") and lines[-1].endswith("(+1 since 2026-11-25)")


# -- several feeds ---------------------------------------------------------------------------------
TOKEN = "standin-token-notifyfeeds1"
FEEDS = ["movie/day", "tv/day", "person/day"]
TODAY = dt.datetime.now(dt.UTC).date()  # a live list is labelled today or yesterday


def feeds_config(tmp_path: Path, standin: TmdbStandin, notify: dict[str, Any]) -> Path:
    """Three feeds of one page from the stand-in → a local lake → the notify reporter alone."""
    options = {"base_url": standin.base_url, "feeds": FEEDS, "pages": 1, "rate_limit": 1000, "backoff": 0.01}
    document = {
        "extractor": {"type": "tmdb-trending", "options": options},
        "transformer": {"type": "standardize"},
        "loader": {"type": "local", "options": {"root": str(tmp_path / "lake")}},
        "reporter": [{"type": "notify", "options": notify}],
    }
    return write_document(tmp_path / "feeds.yml", document)


def paragraphs(message: dict[str, Any]) -> list[list[str]]:
    return [block.splitlines() for block in message["message"].split("\n\n")]


async def test_a_digest_of_several_feeds_has_a_paragraph_per_feed_and_names_a_failed_one(
    tmp_path: Path, run_cli: CliRunner, inbox: Inbox, tmdb_standin: StandinFactory
) -> None:
    standin = await tmdb_standin(token=TOKEN, total_pages=50, list_errors={"tv/day": 401})
    path = str(feeds_config(tmp_path, standin, {"url": inbox.url(), "on_success": True}))

    done = await asyncio.to_thread(run_cli, "run", "--config", path, env={"TMDB_ACCESS_TOKEN": TOKEN})

    assert done.returncode == 1
    [message] = inbox.received
    assert (message["type"], message["title"]) == ("failure", f"TMDB trending: {TODAY} failed")
    [error_line] = error_lines(done.stderr)
    line, movies, tv, persons = paragraphs(message)
    assert line == [error_line.removeprefix("error: ")] and line[0].startswith("1 of 3 feeds failed: tv/day: ")
    assert movies[0] == "20 titles in trending movies, today. Top 3:"
    assert tv[0].startswith("trending TV shows, today: failed (") and "HTTP 401" in tv[0] and len(tv) == 1
    assert persons[0] == "20 people in trending people, today. Top 3:"
    people = lake_top(tmp_path / "lake", "person/day")
    assert persons[1:4] == [f"{rank}. {name}{f' ({known})' if known else ''}" for rank, name, known in people[:3]]
    assert movies[4] == persons[4] == "Biggest climber: none yet (the first day in the lake)"
    assert len(movies) == len(persons) == 5
    assert_no_secret(json.dumps(inbox.received), done.stdout, done.stderr)


def lake_top(root: Path, spec: str) -> list[tuple[int, str, str]]:
    """A committed person day as the lake holds it: ``(rank, name, department)``, best first."""
    from pipeline.datalake import schema

    [path] = (root / "cleaned_data" / "people").rglob(f"{TODAY}_people.csv")
    frame = schema.read_csv_bytes(path.read_bytes(), schema.PEOPLE).sort_values("rank")
    return list(zip(frame["rank"], frame["name"], frame["known_for_department"], strict=True))


async def test_without_a_digest_a_run_whose_feeds_failed_sends_the_cli_error_line(
    tmp_path: Path, run_cli: CliRunner, inbox: Inbox, tmdb_standin: StandinFactory
) -> None:
    """Some feeds failed (the reporters ran), every one did (none ran), or some did in a dry run (no reporter runs on
    a dry run): each time one message, the CLI's line."""
    standin = await tmdb_standin(token=TOKEN, total_pages=50, list_errors={"person/day": 401})
    path = str(feeds_config(tmp_path, standin, {"url": inbox.url()}))
    env = {"TMDB_ACCESS_TOKEN": TOKEN}

    some = await asyncio.to_thread(run_cli, "run", "--config", path, env=env)
    dry = await asyncio.to_thread(run_cli, "run", "--config", path, "--dry-run", env=env)
    standin.config.list_errors = {spec: 401 for spec in FEEDS}
    every = await asyncio.to_thread(run_cli, "run", "--config", path, env=env)

    assert (some.returncode, dry.returncode, every.returncode) == (1, 1, 1)
    assert [m["type"] for m in inbox.received] == ["failure", "failure", "failure"]
    sent = [m["message"] for m in inbox.received]
    assert sent == [error_lines(done.stderr)[0].removeprefix("error: ") for done in (some, dry, every)]
    assert sent[0].startswith("1 of 3 feeds failed: person/day: ") and sent[2].startswith("3 of 3 feeds failed: ")
    assert sent[1].startswith("1 of 3 feeds failed: person/day: ") and "would write" in dry.stdout
    assert_no_secret(json.dumps(inbox.received), some.stderr, dry.stderr, every.stderr)


async def test_a_message_body_is_cut_to_what_chat_services_take(inbox: Inbox) -> None:
    from pipeline.config import StageConfig
    from pipeline.runner import build_stage
    from stages.reporters import notify
    from tests.support.lake import context_for

    reporter = build_stage("reporter", StageConfig("notify", {"url": inbox.url()}, "reporter.0"))
    context = context_for(dt.date(2026, 11, 25))

    await reporter.on_failure(context, "x" * 5000)
    await reporter.on_failure(context, "short")

    long, short = (m["message"] for m in inbox.received)
    assert len(long) == notify.MAX_BODY and long.endswith("x…")
    assert short == "short"
