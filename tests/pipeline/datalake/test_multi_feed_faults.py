"""A three-feed run killed or stopped mid-way: every feed's day is entirely old or entirely new.

A local lake holds an old committed day (one page) for each of ``movie/day``, ``tv/day`` and
``person/day``. A probe run of all three feeds (two pages each, from the TMDB stand-in this
process serves) counts the run's file-system steps. Then, at a spread of those steps, a fresh
copy of the lake gets the same run in a forked ``python -m pipeline`` that ``FsFaults`` SIGKILLs,
or SIGTERMs, right after the step. Each time, for each feed:

1. a reader (``read_committed``, ``read_day``) and the cleaned key itself see that feed's day
   entirely old or entirely new;
2. a SIGTERM'd run exits 143 with one ``error:`` line, and what it says of each feed is true: a
   feed it names as ``nothing was committed`` is old, one it names as ``was committed`` is new,
   and one it does not name was committed before the signal, so it is new;
3. the next run's first step (``recover()``) heals the lake, at the last point a whole run of all
   three feeds: ``repair --check`` is then clean, no lock or temp file is left, and healing does
   not change what a reader sees.

The feeds stream concurrently, so a step's number does not name the same step in every run: the
points are a spread of numbers, checked against the promises, not against an expected state each.
The tally must show both ends, and for the kills a mix (some feeds new, some old), or the spread missed it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pipeline.datalake import LakeLoader
from pipeline.runner import new_context, run_pipeline
from pipeline.stage import Feed
from stages.loaders.local import LocalLoader, LocalOptions
from tests.support.cli import error_lines
from tests.support.faults import Child, ChildResult, FsFaults
from tests.support.fixtures_tmdb import StandinFactory
from tests.support.sample import write_config
from tests.support.tmdb_standin import TmdbStandin

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs/lake-protocol.md"
TOKEN = "standin-token-multifeed-faults"
FEEDS = [Feed("movie", "day"), Feed("tv", "day"), Feed("person", "day")]
STRIDE = 8
"""Every fourth step is a point, for each mode: a three-feed run has about three times a one-feed run's steps,
each point forks a run and checks three feeds, and the one-feed harness already walks every step."""
EXTRACTED_AT = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?\+00:00")

pytestmark = pytest.mark.timeout(120)


def config(standin: TmdbStandin, root: Path, pages: int) -> dict[str, Any]:
    """All three feeds, ``pages`` each, into a local CSV lake at ``root``; no reports."""
    options = {"base_url": standin.base_url, "feeds": [f.spec for f in FEEDS], "pages": pages, "rate_limit": 1000}
    return {
        "extractor": {"type": "tmdb-trending", "options": options},
        "transformer": {"type": "standardize"},
        "loader": {"type": "local", "options": {"root": str(root)}},
        "reporter": [],
    }


def loader(root: Path, day: dt.date) -> LakeLoader[Any]:
    return LocalLoader(LocalOptions(root=root), new_context(day), name="local")


def timeless(data: bytes) -> bytes:
    """A cleaned file without its fetch times: what two runs over the same stand-in data share."""
    return EXTRACTED_AT.sub(b"T", data)


async def view(root: Path, day: dt.date, *, decode: bool = True) -> dict[Feed, tuple[bytes | None, bytes | None]]:
    """Each feed's day through its manifest (with ``decode``, decoded too), and the bytes at its cleaned key."""
    found = {}
    async with loader(root, day) as lake:
        for feed in FEEDS:
            committed = await lake.read_committed(day, feed)
            if decode:
                frame = await lake.read_day(day, feed)
                assert (committed is None) == (frame is None), feed.spec
            seed = await lake.lake.get_bytes(lake.layout.key("cleaned", day, feed))
            found[feed] = (committed[0] if committed else None), seed
    return found


def leftovers(root: Path) -> list[str]:
    temps = [str(p) for p in root.rglob("*.tmp")]
    locks = [str(p) for p in (root / "_locks").rglob("*")] if (root / "_locks").exists() else []
    return temps + locks


class Points:
    """The template lake, the old and new bytes of each feed, and the checks of one fault point."""

    def __init__(self, standin: TmdbStandin, base: Path, day: dt.date) -> None:
        self.standin, self.base, self.day = standin, base, day
        self.template = base / "template"
        self.old: dict[Feed, bytes] = {}
        self.new: dict[Feed, bytes] = {}
        self.steps: list[str] = []
        self.tally: Counter[str] = Counter()
        self.copies = 0

    async def setup(self) -> None:
        """Commit one page of every feed (the old days), then probe a run of two pages over a copy."""
        result = await run_pipeline(config(self.standin, self.template, pages=1), trend_date=self.day)
        assert [f.status for f in result.feeds] == ["committed"] * 3
        for feed, (old, seed) in (await view(self.template, self.day)).items():
            assert old is not None and seed == old
            self.old[feed] = old
        where = self.copy()
        run = await self.run(where, FsFaults())
        assert run.code == 0, run.stderr
        self.steps = run.steps
        for feed, (new, _) in (await view(where, self.day)).items():
            assert new is not None and timeless(new) != timeless(self.old[feed]), feed.spec
            self.new[feed] = timeless(new)

    def copy(self) -> Path:
        self.copies += 1
        target = self.base / f"lake-{self.copies}"
        shutil.copytree(self.template, target)
        return target

    async def run(self, where: Path, fs: FsFaults, name: str = "child") -> ChildResult:
        """The three-feed run over ``where`` in a forked child, while this loop keeps serving the stand-in."""
        path = write_config(self.base / f"{name}.yml", config(self.standin, where, pages=2))
        child = Child(
            ["run", "--config", str(path), "-q"], self.base, name=name, env={"TMDB_ACCESS_TOKEN": TOKEN}, fs=fs
        )
        child.go()
        return await asyncio.to_thread(child.wait)

    def state(self, feed: Feed, data: bytes | None, label: str) -> str:
        if data == self.old[feed]:
            return "old"
        assert data is not None and timeless(data) == self.new[feed], f"{label}: {feed.spec} is neither old nor new"
        return "new"

    async def point(self, mode: str, at: int, *, whole_run: bool) -> None:
        label = f"{mode} at step {at}"
        where = self.copy()
        result = await self.run(where, FsFaults(mode, at), name=f"{mode}-{at}")
        seen = await view(where, self.day)
        states = {}
        for feed, (found, seed) in seen.items():
            states[feed] = self.state(feed, found, f"{label}, read")
            self.state(feed, seed, f"{label}, the cleaned key")
        if mode == "kill":
            assert result.code is None or result.code == 0, f"{label}: {result.code} {result.stderr}"
        elif result.code != 0:  # a signal after the run's last step may find it already done
            assert result.code == 128 + signal.SIGTERM, f"{label}: {result.code} {result.stderr}"
            [line] = error_lines(result.stderr)
            assert line.startswith("error: stopped by SIGTERM; "), f"{label}: {line}"
            self.check_outcomes(line, states, label)
        if result.code == 0:
            assert set(states.values()) == {"new"}, f"{label}: exit 0 but {states}"
        await self.heal(where, whole_run=whole_run)
        after = await view(where, self.day, decode=False)  # the decoding read was made before healing
        if not whole_run:  # healing publishes what was committed; it changes no reader's view
            assert {feed: found for feed, (found, _) in after.items()} == {f: s[0] for f, s in seen.items()}, label
        for feed, (found, seed) in after.items():
            assert seed == found, f"{label}: {feed.spec}'s cleaned key does not match its manifest after healing"
        mix = "".join("N" if states[feed] == "new" else "o" for feed in FEEDS)
        self.tally[f"{mode}:{mix}:{'killed' if result.code is None else result.code}"] += 1

    def check_outcomes(self, line: str, states: dict[Feed, str], label: str) -> None:
        """What the one line says of each feed is true; a feed it does not name committed before the signal."""
        for feed in FEEDS:
            said = re.search(rf"{re.escape(feed.spec)}: (nothing was committed|[^;]* was committed)", line)
            if said is None:
                assert states[feed] == "new", f"{label}: {line} leaves out {feed.spec}, which is old"
            else:
                promise = "old" if said.group(1) == "nothing was committed" else "new"
                assert states[feed] == promise, f"{label}: {line} says {feed.spec} is {promise}"

    async def heal(self, where: Path, *, whole_run: bool) -> None:
        """The next run's first step, ``recover()``; or a whole three-feed run, which must commit every feed."""
        if whole_run:
            result = await self.run(where, FsFaults(), name="next")
            assert result.code == 0, result.stderr
            assert {
                feed: self.state(feed, found, "next run") for feed, (found, _) in (await view(where, self.day)).items()
            } == {feed: "new" for feed in FEEDS}
        else:
            async with loader(where, self.day + dt.timedelta(days=1)) as lake:
                await lake.recover()
        async with loader(where, self.day) as lake:
            report = await lake.repair(check=True)
        assert report.problems + report.actions == [], f"not healed: {report}"
        assert leftovers(where) == []


@pytest.fixture
async def points(tmdb_standin: StandinFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Points:
    monkeypatch.setenv("TMDB_ACCESS_TOKEN", TOKEN)
    standin = await tmdb_standin(token=TOKEN, total_pages=50)
    found = Points(standin, tmp_path, dt.datetime.now(dt.UTC).date())
    await found.setup()
    return found


@pytest.mark.parametrize("mode", ["kill", "term"])
async def test_a_three_feed_run_killed_or_stopped_at_a_spread_of_steps_leaves_every_feed_old_or_new(
    points: Points, mode: str
) -> None:
    count = len(points.steps)
    assert count >= 60, points.steps
    [documented] = re.findall(r"(\d+) file-system steps of a three-feed run", DOC.read_text(encoding="utf-8"))
    assert abs(count - int(documented)) <= 10, f"the docs say {documented} steps; this run had {count}"
    spread = list(range(1 + (mode == "term") * (STRIDE // 2), count + 1, STRIDE))
    if mode == "kill":
        # The three commits can fall within a few steps of each other, between two points of the spread: the
        # probe's manifest steps (a feed's commit point) are points too, so that a kill lands between them.
        commits = [number for number, step in enumerate(points.steps, 1) if "/_manifests/" in step]
        assert len(commits) >= 3, points.steps  # at least one step a feed
        spread = sorted({*spread[:-1], *(n for n in commits if n < spread[-1]), spread[-1]})
    for at in spread:
        await points.point(mode, at, whole_run=at == spread[-1])
    assert sum(points.tally.values()) == len(spread)
    mixes = {key.split(":")[1] for key in points.tally}
    assert "ooo" in mixes and "NNN" in mixes, points.tally
    if mode == "kill":  # a SIGTERM lets every feed's commit, once begun, finish: a mix is rare there
        assert mixes - {"ooo", "NNN"}, f"no point left some feeds new and others old: {points.tally}"
