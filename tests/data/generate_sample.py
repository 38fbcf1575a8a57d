"""Regenerates the bundled SYNTHETIC sample of TMDB trending pages (two days, three pages each).

Every title, id and number here is invented; only the shape follows TMDB's API. The
titles include the hostile cases the pipeline must survive: table pipes, newlines,
Markdown and HTML, links, mentions, spreadsheet-formula prefixes and non-ASCII text.

Each page file is one raw-zone response record (``pipeline.datalake.rawzone``): the body as TMDB
would send it, the request it answered and when it was fetched, as a live run archives it.

Run: ``.venv/bin/python tests/data/generate_sample.py`` (deterministic; rewrites tests/data/sample/).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from pipeline.datalake import rawzone
from pipeline.stage import Batch, Feed

HERE = Path(__file__).parent / "sample"
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


if __name__ == "__main__":
    main()
