"""The ``html`` dashboard in a real browser: headless Chromium (Debian's ``chromium``), over its DevTools protocol.

Run by ``make e2e`` (which installs Chromium when it is missing), not by ``make test``. The page is the
demo's: ``tools/demo.py`` replays the 30 bundled days into a temporary lake. The test asserts on the
rendered DOM: one chart series per title of the top 10, a table of 10 rows, no console error, and the
hostile title ``<img src=x onerror=alert(1)>`` shown as text without running. It saves a screenshot to
``e2e-artifacts/dashboard.png`` (``$E2E_ARTIFACTS`` overrides the folder). A second page is a real run of
``config/pipeline.yml``'s three feeds against the local TMDB stand-in: one section per feed, each with its
chart and its top 10 (``e2e-artifacts/dashboard-feeds.png``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "<img src=x onerror=alert(1)>"
ARTIFACTS = Path(os.environ.get("E2E_ARTIFACTS", ROOT / "e2e-artifacts"))
# Records what an injected handler would do, before any of the page's own code runs.
TRAP = "window.__ran = []; window.alert = function (m) { window.__ran.push(String(m)); };"


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("chromium is not installed: run `make e2e`, which installs Debian's chromium package")
    return found


@pytest.fixture(scope="module")
def feeds_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``config/pipeline.yml``'s three feeds (movies, TV, people), 2 pages each, fetched from the local TMDB
    stand-in (``tests/support/tmdb_standin.py``, in its own process) by a real ``python -m pipeline run``."""
    out = tmp_path_factory.mktemp("feeds")
    standin = subprocess.Popen(
        [sys.executable, "-m", "tests.support.tmdb_standin", "--port", "0", "--config", "{}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert standin.stdout is not None
        base_url = f"http://127.0.0.1:{standin.stdout.readline().split()[1]}"
        env = {**os.environ, "TMDB_ACCESS_TOKEN": "e2e-token", "TMDB_BASE_URL": base_url}
        env["PIPELINE_CACHE_DIR"] = str(out / "cache")  # TMDB's lookups: not into the user's own cache folder
        page = out / "site" / "index.html"
        argv = ["run", "-q", "--config", "config/pipeline.yml", "--set", "extractor.options.pages=2"]
        argv += ["--set", f"loader.options.root={out / 'lake'}"]
        argv += ["--set", f"reporter=[{{type: html, options: {{path: {page}}}}}]"]
        subprocess.run([sys.executable, "-m", "pipeline", *argv], cwd=ROOT, env=env, check=True, timeout=120)
    finally:
        standin.terminate()
        standin.wait(timeout=10)
    return page


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's dashboard, built from the bundled days into a temporary lake."""
    lake = tmp_path_factory.mktemp("lake")
    env = {**os.environ, "LAKE_ROOT": str(lake)}
    subprocess.run([sys.executable, "tools/demo.py"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    return lake / "site" / "index.html"


class Browser:
    """One page of a headless Chromium, spoken to over the DevTools protocol; console errors are collected."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.socket:
            data = json.loads(message.data)
            if "id" in data:
                self._waiting.pop(data["id"]).set_result(data)
                continue
            method, params = data.get("method"), data.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                self.errors.append(params["exceptionDetails"].get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                self.errors.append(params["entry"]["text"])
            elif method == "Page.javascriptDialogOpening":
                self.dialogs.append(params.get("message", ""))
                await self.socket.send_str(
                    json.dumps({"id": -1, "method": "Page.handleJavaScriptDialog", "params": {"accept": True}})
                )
            await self.events.put(data)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        await self.socket.send_str(json.dumps({"id": self._next, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, 30)
        assert "error" not in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def evaluate(self, expression: str) -> Any:
        answer = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in answer, answer
        return answer["result"].get("value")

    async def open(self, url: str) -> None:
        for domain in ("Page", "Runtime", "Log"):
            await self.send(f"{domain}.enable")
        await self.send("Page.addScriptToEvaluateOnNewDocument", source=TRAP)
        await self.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        await self.send("Page.navigate", url=url)
        while (await asyncio.wait_for(self.events.get(), 30)).get("method") != "Page.loadEventFired":
            pass


@contextlib.asynccontextmanager
async def browser(profile: Path) -> AsyncIterator[Browser]:
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0"]
    process = await asyncio.create_subprocess_exec(
        *args,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        port = None
        while port is None:
            line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode(errors="replace")
            assert line, "chromium exited before it listened"
            if match := re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line):
                port = int(match.group(1))
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as listing:
                targets = await listing.json()
            target = next(t for t in targets if t["type"] == "page")
            async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as socket:
                driver = Browser(socket)
                try:
                    yield driver
                finally:
                    driver._reader.cancel()
    finally:
        process.terminate()
        await process.wait()


@pytest.mark.timeout(180)
async def test_the_dashboard_renders_its_chart_and_tables_and_runs_no_title(page: Path, tmp_path: Path) -> None:
    async with browser(tmp_path / "profile") as tab:
        await tab.open(page.as_uri())
        series = await tab.evaluate(
            """[...document.querySelectorAll('figure.chart g[id^="movies-series-"]')].map(g => {
                 const box = g.getBoundingClientRect(); return [g.id, box.width > 0 && box.height > 0]; })"""
        )
        titles = await tab.evaluate(
            "[...document.querySelectorAll('#top-movies tbody td.title')].map(td => td.textContent)"
        )
        legend = await tab.evaluate("[...document.querySelectorAll('figure.chart svg text')].map(t => t.textContent)")
        chart_box = await tab.evaluate("document.querySelector('#chart-movies svg').getBoundingClientRect().height")
        images = await tab.evaluate("document.querySelectorAll('img').length")
        ran = await tab.evaluate("window.__ran")
        shot = await tab.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "dashboard.png").write_bytes(base64.b64decode(shot["data"]))

    assert [s[0] for s in series] == [f"movies-series-{n}" for n in range(1, 11)], "one series per title"
    assert all(visible for _, visible in series), "every series is drawn"
    assert chart_box > 200
    assert len(titles) == 10 and len(set(titles)) == 10
    for number, title in enumerate(titles, start=1):
        assert any(text.startswith(f"{number}. ") and text[len(f"{number}. ") :] in title for text in legend), title
    assert HOSTILE in titles, "the hostile title is shown as text"
    assert images == 0 and ran == [] and tab.dialogs == [], "the hostile title ran nothing"
    assert tab.errors == [], tab.errors


@pytest.mark.timeout(180)
async def test_a_run_of_three_feeds_shows_a_section_per_feed_each_with_its_chart_and_top_10(
    feeds_page: Path, tmp_path: Path
) -> None:
    async with browser(tmp_path / "profile") as tab:
        await tab.open(feeds_page.as_uri())
        sections = await tab.evaluate(
            """[...document.querySelectorAll('section[id^="feed-"]')].map(s => [s.id,
                 s.querySelector('h2') ? s.querySelector('h2').textContent : ''])"""
        )
        drawn = await tab.evaluate(
            """Object.fromEntries(['movies', 'tv', 'people'].map(slug => [slug, {
                 series: [...document.querySelectorAll(`#chart-${slug} g[id^="${slug}-series-"]`)]
                   .filter(g => { const b = g.getBoundingClientRect(); return b.width > 0 && b.height > 0; }).length,
                 rows: document.querySelectorAll(`#top-${slug} tbody tr`).length,
                 header: [...document.querySelectorAll(`#top-${slug} thead th`)].map(th => th.textContent),
               }]))"""
        )
        shot = await tab.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "dashboard-feeds.png").write_bytes(base64.b64decode(shot["data"]))

    assert [s[0] for s in sections] == ["feed-movies", "feed-tv", "feed-people"], sections
    assert [s[1] for s in sections] == ["Trending movies, today", "Trending TV shows, today", "Trending people, today"]
    for slug in ("movies", "tv", "people"):
        assert drawn[slug]["series"] == 10 and drawn[slug]["rows"] == 10, (slug, drawn[slug])
    assert "Known for" in drawn["people"]["header"] and "Known for" not in drawn["movies"]["header"]
    assert tab.errors == [], tab.errors
