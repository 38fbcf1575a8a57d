"""``standardize`` transformer: one TMDB page in, one chunk of the documented schema out.

Rules: rank is page-derived; duplicate ids keep their first (best) rank, later copies
are dropped and counted; records without an id or with a non-numeric popularity are
dropped and counted, never fatal; ``person`` results of the ``all`` feed are dropped and
counted; TV fields (``name``, ``first_air_date``) map onto the movie columns. Titles
are kept exactly as TMDB sent them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from pipeline import schema
from pipeline.errors import TransformError
from pipeline.stage import Batch, Lookups, Transformer

logger = logging.getLogger(__name__)

_TITLE_FIELDS = {
    "movie": ("title", "original_title", "release_date"),
    "tv": ("name", "original_name", "first_air_date"),
}


@dataclasses.dataclass(frozen=True)
class StandardizeOptions:
    """Options of the ``standardize`` transformer."""

    page_size: int = dataclasses.field(default=20, metadata={"ge": 1, "le": 100})


class StandardizeTransformer(Transformer[StandardizeOptions]):
    """Cleans TMDB trending pages into the schema of ``pipeline.schema``."""

    Options = StandardizeOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._seen: set[int] = set()

    async def transform(self, batch: Batch) -> pd.DataFrame:
        """Clean one page; pages must arrive in page order for dedupe to keep the best rank."""
        results = batch.payload.get("results")
        if not isinstance(results, list):
            raise TransformError(f"page {batch.page}: the body has no 'results' list", stage=self.name)
        first_rank = (batch.page - 1) * self.options.page_size + 1
        rows = []
        for index, item in enumerate(results):
            row = self._row(item, first_rank + index, batch)
            if row is not None:
                rows.append(row)
        if not rows:
            return schema.empty_frame()
        return schema.conform(pd.DataFrame(rows))

    def _row(self, item: Any, rank: int, batch: Batch) -> dict[str, Any] | None:
        if not isinstance(item, Mapping):
            self._drop("not_an_object", rank, batch)
            return None
        media_type = item.get("media_type") or batch.feed.media_type
        if media_type == "person":
            self._drop("person", rank, batch, quiet=True)
            return None
        if media_type not in _TITLE_FIELDS:
            self._drop("unknown_media_type", rank, batch)
            return None
        tmdb_id = item.get("id")
        if isinstance(tmdb_id, bool) or not isinstance(tmdb_id, int):
            self._drop("missing_id", rank, batch)
            return None
        popularity = _number(item.get("popularity"))
        if popularity is None:
            self._drop("non_numeric_popularity", rank, batch)
            return None
        if tmdb_id in self._seen:
            self._drop("duplicate_id", rank, batch, quiet=True)
            return None
        self._seen.add(tmdb_id)
        title_key, original_key, date_key = _TITLE_FIELDS[media_type]
        genre_ids = [g for g in item.get("genre_ids") or [] if isinstance(g, int) and not isinstance(g, bool)]
        vote_count = item.get("vote_count")
        return {
            "trend_date": self.context.trend_date.isoformat(),
            "rank": rank,
            "id": tmdb_id,
            "title": _text(item.get(title_key)),
            "original_title": _text(item.get(original_key)),
            "original_language": _text(item.get("original_language")),
            "release_date": _iso_date(item.get(date_key)),
            "popularity": popularity,
            "vote_average": _number(item.get("vote_average")),
            "vote_count": vote_count if isinstance(vote_count, int) and not isinstance(vote_count, bool) else 0,
            "genre_ids": "|".join(str(g) for g in genre_ids),
            "media_type": media_type,
            "time_window": batch.feed.time_window,
            "extracted_at": batch.extracted_at.astimezone(dt.UTC).isoformat(),
            "genres": _genre_names(genre_ids, batch.lookups),
            "poster_url": _poster_url(item.get("poster_path"), batch.lookups),
        }

    def _drop(self, reason: str, rank: int, batch: Batch, *, quiet: bool = False) -> None:
        self.dropped[reason] += 1
        log = logger.debug if quiet else logger.warning
        log("page %d, rank %d: dropped (%s); %d so far", batch.page, rank, reason, self.dropped[reason])


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _iso_date(value: Any) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        return dt.date.fromisoformat(value).isoformat() if len(value) == 10 else ""
    except ValueError:
        return ""


def _genre_names(genre_ids: list[int], lookups: Lookups) -> str:
    return "|".join(lookups.genres[g] for g in genre_ids if g in lookups.genres)


def _poster_url(path: Any, lookups: Lookups) -> str:
    if not lookups.poster_base_url or not isinstance(path, str) or not path.startswith("/"):
        return ""
    return f"{lookups.poster_base_url.rstrip('/')}{path}"
