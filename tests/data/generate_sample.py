"""Regenerates the bundled SYNTHETIC samples of TMDB trending pages.

- ``sample/``: two days, three pages each, every hostile case (the report tests' golden files).
- ``series/``: 30 days (one of them missing: the job "did not run"), one page each, as the
  raw zone stores them (``pipeline.datalake.rawzone``: a lookups line, then one response
  record per page, gzip-compressed); ``make run`` replays them so the demo report shows a trend.

Every title, id and number here is invented; only the shape follows TMDB's API. The
titles include the hostile cases the pipeline must survive: table pipes, newlines,
Markdown and HTML, links, mentions, spreadsheet-formula prefixes and non-ASCII text.

Each page file of ``sample/`` is one raw-zone response record (``pipeline.datalake.rawzone``): the body as
TMDB would send it, the request it answered and when it was fetched, as a live run archives it.

Run: ``.venv/bin/python tests/data/generate_sample.py`` (deterministic; rewrites tests/data/sample/ and series/).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the raw zone's own writer formats the files

from pipeline.datalake import rawzone  # noqa: E402 - after the path is set
from pipeline.stage import Batch, Feed  # noqa: E402

HERE = Path(__file__).parent / "sample"
SERIES = Path(__file__).parent / "series"
SERIES_END = dt.date(2026, 11, 25)
SERIES_DAYS = 30
SERIES_SKIPPED = dt.date(2026, 11, 10)  # a day the job did not run: the report shows it as a gap
GENRES = {
    28: "Action",
    12: "Adventure",
    16: "Animation",
    35: "Comedy",
    80: "Crime",
    99: "Documentary",
    18: "Drama",
    10751: "Family",
    14: "Fantasy",
    36: "History",
    27: "Horror",
    10402: "Music",
    9648: "Mystery",
    10749: "Romance",
    878: "Science Fiction",
    53: "Thriller",
    10752: "War",
    37: "Western",
}
HOSTILE = [
    "Pipes | Between | Cells",
    "Line\nBreak Story",
    "**Bold** and *Italic* Claims",
    "<script>alert('x')</script>",
    "Amélie's Café — 東京物語 🎬",
    '=HYPERLINK("http://evil.example","click")',
    "+Plus Side",
    "-Minus World",
    "@everyone Premiere Night",
    "[Click me](http://evil.example) ![img](http://evil.example/x.png)",
    "# Not A Heading",
    "Back\\slash `code` _under_ ~~strike~~",
    "NA",
    '"Quoted", With Comma',
    "<img src=x onerror=alert(1)>",
]
WORDS = [
    "Silent",
    "Harbor",
    "Crimson",
    "Orbit",
    "Velvet",
    "Thunder",
    "Paper",
    "Lantern",
    "Frozen",
    "Echo",
    "Garden",
    "Iron",
    "Midnight",
    "Signal",
    "Copper",
    "Tide",
    "Glass",
    "Empire",
    "Willow",
    "Static",
]


def title(rng: random.Random) -> str:
    return f"The {rng.choice(WORDS)} {rng.choice(WORDS)}"


def movie(rng: random.Random, movie_id: int, name: str) -> dict[str, object]:
    year = rng.randint(1995, 2026)
    return {
        "adult": False,
        "backdrop_path": f"/b{movie_id}.jpg",
        "id": movie_id,
        "title": name,
        "original_title": name,
        "original_language": rng.choice(["en", "en", "en", "fr", "ja", "ko", "es"]),
        "overview": f"Synthetic overview for {movie_id}.",
        "poster_path": f"/p{movie_id}.jpg",
        "media_type": "movie",
        "genre_ids": rng.sample(sorted(GENRES), k=rng.randint(1, 3)),
        "popularity": round(rng.uniform(20, 900), 3),
        "release_date": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "video": False,
        "vote_average": round(rng.uniform(4, 9), 3),
        "vote_count": rng.randint(0, 25000),
    }


def build_catalogue(rng: random.Random) -> list[dict[str, object]]:
    items = []
    for i in range(75):
        name = HOSTILE[i] if i < len(HOSTILE) else title(rng)
        items.append(movie(rng, 900001 + i * 7, name))
    items[3]["release_date"] = ""  # unknown release date
    items[4]["poster_path"] = None
    items[4]["backdrop_path"] = None
    items[4]["overview"] = ""
    items[20]["vote_count"] = 0
    items[20]["vote_average"] = 0.0
    return items


def day_pages(items: list[dict[str, object]], rng: random.Random) -> list[dict[str, object]]:
    hostile = [m for m in items if m["title"] in HOSTILE]  # every hostile title appears every day
    others = [m for m in items if m["title"] not in HOSTILE]
    rng.shuffle(others)
    picked = sorted(hostile + others[: 60 - len(hostile)], key=lambda m: -float(m["popularity"]))  # type: ignore[arg-type]
    results = [dict(m) for m in picked]
    pages = []
    for page in range(3):
        pages.append(
            {"page": page + 1, "results": results[page * 20 : page * 20 + 20], "total_pages": 3, "total_results": 60}
        )
    return pages


def record(day: str, page: dict[str, object]) -> bytes:
    """The raw-zone line a live run writes for ``page`` of ``day``, fetched at noon UTC plus a second per page."""
    number = int(page["page"])  # type: ignore[call-overload]
    batch = Batch(
        page=number,
        payload=page,
        feed=Feed(),
        extracted_at=dt.datetime.fromisoformat(f"{day}T12:00:00+00:00") + dt.timedelta(seconds=number),
        body=json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        status=200,
        request=f"/3/trending/movie/day?page={number}",
    )
    return rawzone.page_line(batch)


def main() -> None:
    rng = random.Random(20261125)
    catalogue = build_catalogue(rng)
    lookups = {
        "lookups": {
            "genres": [{"id": k, "name": v} for k, v in sorted(GENRES.items())],
            "poster_base_url": "https://image.tmdb.org/t/p/w500",
        }
    }
    days = {}
    for day in ("2026-11-24", "2026-11-25"):
        for m in catalogue:  # the list moves: popularity drifts day to day
            m["popularity"] = round(float(m["popularity"]) * rng.uniform(0.6, 1.5), 3)  # type: ignore[arg-type]
        days[day] = day_pages(catalogue, rng)
    today = days["2026-11-25"]
    # messy records on the latest day: no id, non-numeric popularity, a duplicate across pages
    today[1]["results"][5] = {k: v for k, v in today[1]["results"][5].items() if k != "id"}
    today[2]["results"][7] = dict(today[2]["results"][7], popularity="very high")
    today[1]["results"][0] = dict(today[0]["results"][2])
    for day, pages in days.items():
        folder = HERE / day
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.json"):
            old.unlink()
        (folder / "_lookups.json").write_text(json.dumps(lookups, indent=1, ensure_ascii=False) + "\n")
        for page in pages:
            (folder / f"page-{page['page']:03d}.json").write_bytes(record(day, page))
    (HERE / "README.md").write_text(
        "# Synthetic sample\n\nSYNTHETIC data in the shape of TMDB's `/3/trending/movie/day` responses, made by "
        "`tests/data/generate_sample.py`. No title, id or number is real. Two days (2026-11-24 and 2026-11-25), "
        "three pages each, each page a raw-zone response record (`pipeline.datalake.rawzone`), "
        "with hostile titles, a missing release date, null and empty fields, a record without "
        "an id, a non-numeric popularity and a duplicate id across pages.\n",
        encoding="utf-8",
    )



def series_catalogue(rng: random.Random) -> list[dict[str, object]]:
    """40 titles: two share a name (told apart by year), two more share name and year (told apart by id)."""
    names = [title(rng) for _ in range(34)]
    names += ["The Velvet Paper", "The Velvet Paper", "Echo Garden", "Echo Garden", "<img src=x onerror=alert(1)>"]
    names += ["Pipes | Between | Cells"]
    items = [movie(rng, 800001 + i * 11, name) for i, name in enumerate(names)]
    items[34]["release_date"], items[35]["release_date"] = "2019-03-08", "2026-10-30"
    items[36]["release_date"], items[37]["release_date"] = "2025-06-01", "2025-09-12"
    for m in items:
        m["popularity"] = round(rng.uniform(40, 400), 3)
    return items


def series_day_results(items: list[dict[str, object]], rng: random.Random, n: int) -> list[dict[str, object]]:
    """Day ``n``'s top 20: each title's popularity follows a slow wave plus noise, so ranks move and hold."""
    scored = []
    for index, m in enumerate(items):
        base = float(m["popularity"])  # type: ignore[arg-type]
        phase, period = (index * 0.7) % (2 * math.pi), 12 + index % 17
        wave = 1 + 0.45 * math.sin(2 * math.pi * n / period + phase)
        scored.append((round(base * wave * rng.uniform(0.97, 1.03), 3), index))
    scored.sort(reverse=True)
    return [dict(items[index], popularity=score) for score, index in scored[:20]]


def series_main() -> None:
    from pipeline.datalake import rawzone
    from pipeline.stage import Batch, Feed, Lookups

    rng = random.Random(20261027)
    items = series_catalogue(rng)
    lookups = Lookups(genres=dict(GENRES), poster_base_url="https://image.tmdb.org/t/p/w500")
    SERIES.mkdir(parents=True, exist_ok=True)
    for old in SERIES.glob("*.jsonl.gz"):
        old.unlink()
    for n in range(SERIES_DAYS):
        day = SERIES_END - dt.timedelta(days=SERIES_DAYS - 1 - n)
        results = series_day_results(items, rng, n)
        if day == SERIES_SKIPPED:
            continue
        page = {"page": 1, "results": results, "total_pages": 1, "total_results": len(results)}
        body = json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        fetched = dt.datetime.combine(day, dt.time(12, 0, 3), tzinfo=dt.UTC)
        batch = Batch(1, page, Feed(), fetched, lookups, body, 200, "/3/trending/movie/day?page=1")
        lines = rawzone.dumps(rawzone.lookups_document(lookups) or {}) + rawzone.page_line(batch)
        (SERIES / f"{day.isoformat()}.jsonl.gz").write_bytes(gzip.compress(lines, mtime=0))
    (SERIES / "README.md").write_text(
        "# Synthetic series\n\nSYNTHETIC data made by `tests/data/generate_sample.py`: "
        f"{SERIES_DAYS} days of `/3/trending/movie/day` ending {SERIES_END}, one page of 20 each, stored as the "
        "raw zone stores a day (`pipeline/datalake/rawzone.py`). "
        f"{SERIES_SKIPPED} is missing on purpose (a day the job did not run). Two titles share a name and differ "
        "by year; two share name and year and differ by id; one title is hostile HTML. `make run` replays them.\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
    series_main()
