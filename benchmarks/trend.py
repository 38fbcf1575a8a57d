"""Trend model over 30 days of 500-page days (10,000 rows a day, 300,000 rows): build time and peak memory.

Each day is a real cleaned frame (the schema's 16 columns) of a 12,000-title catalogue whose
order drifts day to day, as ``read_window`` gets it from the lake; the figure is the time to
slim the 30 days and build the model, then draw its lists (top 10, holding, rising, new,
fell out) and every top title's trend. Peak memory is the process's peak RSS growth over
the frames already in memory (``tracemalloc`` would miss numpy's buffers).

    .venv/bin/python benchmarks/trend.py        # prints the figures; docs/benchmarks.md records them
"""

from __future__ import annotations

import datetime as dt
import resource
import time

import numpy as np
import pandas as pd

from pipeline import trends
from pipeline.datalake import schema
from pipeline.stage import Feed

DAYS, ROWS, CATALOGUE = 30, 10_000, 12_000
END = dt.date(2026, 11, 25)
LIMIT_SECONDS = 2.0


def day_frame(rng: np.random.Generator, day: dt.date, score: np.ndarray) -> pd.DataFrame:
    """One cleaned day: the catalogue's best ``ROWS`` by a drifting score."""
    order = np.argsort(-score)[:ROWS]
    frame = pd.DataFrame(
        {
            "trend_date": day.isoformat(),
            "rank": np.arange(1, ROWS + 1),
            "id": order + 1000,
            "title": [f"Title {i}" for i in order],
            "original_title": [f"Title {i}" for i in order],
            "original_language": "en",
            "release_date": "2024-05-06",
            "popularity": score[order],
            "vote_average": 7.0,
            "vote_count": 100,
            "genre_ids": "28|12",
            "media_type": "movie",
            "time_window": "day",
            "extracted_at": f"{day.isoformat()}T12:00:03+00:00",
            "genres": "Action|Adventure",
            "poster_url": "",
        }
    )
    return schema.conform(frame)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    rng = np.random.default_rng(20261125)
    score = rng.uniform(10, 1000, CATALOGUE)
    dates = trends.window(END, DAYS)
    frames = []
    for day in dates:
        score = score * rng.uniform(0.9, 1.1, CATALOGUE)
        frames.append(day_frame(rng, day, score))
    before = peak_mib()
    feed = Feed()
    started = time.perf_counter()
    reads = []
    for day, frame in zip(dates, frames, strict=True):
        state = trends.day_state(frame, feed)
        reads.append(trends.DayRead(day, state, trends.slim(frame)))
    model = trends.build(feed, reads, top_n=10)
    shown = [*model.top, *model.holding, *model.rising, *model.new_this_week, *model.fell_out_this_week]
    document = trends.trend_document(model)
    seconds = time.perf_counter() - started
    grown = peak_mib() - before
    rows = sum(len(f) for f in frames)
    print(f"trend model: {DAYS} days, {rows:,} rows, {len(model._keys):,} titles")
    print(f"  build + lists + document: {seconds:.2f} s (limit {LIMIT_SECONDS:.0f} s)")
    print(f"  peak RSS growth while building: {grown:.0f} MiB (the 30 frames themselves: {before:.0f} MiB peak)")
    print(f"  {len(shown)} titles in the lists, {len(document['top'])} in the top")
    if seconds > LIMIT_SECONDS:
        raise SystemExit(f"too slow: {seconds:.2f} s > {LIMIT_SECONDS} s")


if __name__ == "__main__":
    main()
