"""``standardize`` transformer: one TMDB page in, one chunk of the documented schema out.

Rules: rank is derived from the requested page; a row's identity is ``(media_type, id)``
(TMDB's movie and TV ids are separate id spaces, so the ``all`` feed may carry a movie
and a show with the same ``id``); a duplicate identity keeps its first (best) rank,
later copies are dropped and counted. A record that cannot be stored exactly is dropped
and counted with a warning naming the page and id, never fatal: no id or a non-integer
one, an id or vote count outside 64-bit integers, a non-numeric or non-finite
popularity, an unknown ``media_type``, text that is not valid Unicode (a lone
surrogate). TV fields (``name``, ``first_air_date``) map onto the movie columns. Titles
are kept exactly as TMDB sent them.

A ``person`` feed's pages become rows of the people schema (``schema.PEOPLE``): a null or
missing ``known_for_department``, an empty ``known_for`` and a null ``profile_path`` keep
the person (empty text). ``person`` results of the ``all`` feed are set aside and counted as
``person_set_aside`` (docs/fidelity.md says why): the ``all`` day is one titles file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import json
import logging
import math
import os
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from pydantic import Field

from pipeline.datalake import schema
from pipeline.errors import TransformError
from pipeline.options import StageOptions
from pipeline.stage import Batch, Lookups, Transformer

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

INT64_MAX = 2**63 - 1
_TITLE_FIELDS = {
    "movie": ("title", "original_title", "release_date"),
    "tv": ("name", "original_name", "first_air_date"),
}


class StandardizeOptions(StageOptions):
    """Options of the ``standardize`` transformer."""

    page_size: int = Field(default=20, ge=1, le=100)


class StandardizeTransformer(Transformer[StandardizeOptions]):
    """Cleans TMDB trending pages into the schema of ``pipeline.datalake.schema``."""

    Options = StandardizeOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # ids kept, by media type: a set of ints per type, not a tuple per row (a 500-page day keeps 10,000)
        self._seen: dict[str, set[int]] = {}
        self._next_rank = 1
        self._dropped: Counter[str] = Counter()

    async def transform(self, batch: Batch) -> pd.DataFrame:
        """Clean one page; pages must arrive in page order for dedupe to keep the best rank.

        The work runs in a worker thread: the event loop stays free to pace the extractor's
        requests (and the first page's import of pandas does not stall them). One thread for
        every transformer of the process: the work holds the GIL anyway, and each further
        thread would grow the heap by an allocator arena of its own.
        """
        return await asyncio.get_running_loop().run_in_executor(_cleaner(), self._clean, batch)

    def statistics(self) -> Mapping[str, int]:
        """Records dropped so far, by reason (``duplicate_id``, ``missing_id``, ``person_set_aside``, ...)."""
        return MappingProxyType(dict(self._dropped))

    def _clean(self, batch: Batch) -> pd.DataFrame:
        results = batch.payload.get("results")
        if not isinstance(results, list):
            raise TransformError(f"page {batch.page}: the body has no 'results' list", stage=self.name)
        # A page longer than page_size (TMDB once sent 25 results) would give its last results the ranks
        # of the next page's first ones: ranks go on from where the previous page ended.
        first_rank = max((batch.page - 1) * self.options.page_size + 1, self._next_rank)
        if batch.page < 1 or first_rank + len(results) > INT64_MAX:
            raise TransformError(f"page {batch.page}: the page number is out of range", stage=self.name)
        self._next_rank = first_rank + len(results)
        table = schema.for_feed(batch.feed)
        build = self._person_row if table is schema.PEOPLE else self._row
        rows = []
        for index, item in enumerate(results):
            row = build(item, first_rank + index, batch)
            if row is not None:
                rows.append(row)
        if not rows:
            return schema.empty_frame(table)
        return schema.frame_from_rows(rows, table)

    def _person_row(self, item: Any, rank: int, batch: Batch) -> dict[str, Any] | None:
        if not isinstance(item, Mapping):
            self._drop("not_an_object", rank, batch)
            return None
        tmdb_id = item.get("id")
        sent_type = item.get("media_type")
        if sent_type not in (None, "", "person"):
            self._drop("unknown_media_type", rank, batch, tmdb_id)
            return None
        if isinstance(tmdb_id, bool) or not isinstance(tmdb_id, int):
            self._drop("missing_id", rank, batch, tmdb_id)
            return None
        if not 0 <= tmdb_id <= INT64_MAX:
            self._drop("id_out_of_range", rank, batch, tmdb_id)
            return None
        popularity = _number(item.get("popularity"))
        if popularity is None:
            self._drop("non_numeric_popularity", rank, batch, tmdb_id)
            return None
        if tmdb_id in self._seen.get("person", ()):
            self._drop("duplicate_id", rank, batch, tmdb_id, quiet=True)
            return None
        gender = item.get("gender")
        if isinstance(gender, bool) or not isinstance(gender, int) or not 0 <= gender <= INT64_MAX:
            gender = 0  # TMDB's own "not set"
        pairs, titles = _known_for(item.get("known_for"))
        row = {
            "trend_date": self.context.trend_date.isoformat(),
            "rank": rank,
            "id": tmdb_id,
            "name": _text(item.get("name")),
            "original_name": _text(item.get("original_name")),
            "known_for_department": _text(item.get("known_for_department")),
            "gender": gender,
            "popularity": popularity,
            "adult": item.get("adult") is True,
            "known_for": pairs,
            "known_for_titles": titles,
            "profile_url": _image_url(item.get("profile_path"), batch.lookups.profile_base_url),
            "media_type": "person",
            "time_window": batch.feed.time_window,
            "extracted_at": batch.extracted_at.astimezone(dt.UTC).isoformat(),
        }
        broken = [name for name, value in row.items() if isinstance(value, str) and not schema.is_utf8(value)]
        if broken:
            self._drop("invalid_text", rank, batch, tmdb_id, detail=f"not valid Unicode in {', '.join(broken)}")
            return None
        self._seen.setdefault("person", set()).add(tmdb_id)
        return row

    def _row(self, item: Any, rank: int, batch: Batch) -> dict[str, Any] | None:
        if not isinstance(item, Mapping):
            self._drop("not_an_object", rank, batch)
            return None
        tmdb_id = item.get("id")
        sent_type = item.get("media_type")
        media_type = batch.feed.media_type if sent_type is None or sent_type == "" else sent_type
        if media_type == "person":
            self._drop("person_set_aside", rank, batch, tmdb_id, quiet=True)
            return None
        if not isinstance(media_type, str) or media_type not in _TITLE_FIELDS:
            self._drop("unknown_media_type", rank, batch, tmdb_id)
            return None
        if isinstance(tmdb_id, bool) or not isinstance(tmdb_id, int):
            self._drop("missing_id", rank, batch, tmdb_id)
            return None
        if not 0 <= tmdb_id <= INT64_MAX:
            self._drop("id_out_of_range", rank, batch, tmdb_id)
            return None
        popularity = _number(item.get("popularity"))
        if popularity is None:
            self._drop("non_numeric_popularity", rank, batch, tmdb_id)
            return None
        vote_count = item.get("vote_count")
        if vote_count is None:
            vote_count = 0
        elif isinstance(vote_count, bool) or not isinstance(vote_count, int):
            self._drop("non_integer_vote_count", rank, batch, tmdb_id, detail=f"got {_shown(vote_count)}")
            return None
        elif not -INT64_MAX <= vote_count <= INT64_MAX:
            self._drop("vote_count_out_of_range", rank, batch, tmdb_id)
            return None
        vote_average = item.get("vote_average")
        if vote_average is not None and _number(vote_average) is None:
            self._drop("non_numeric_vote_average", rank, batch, tmdb_id, detail=f"got {_shown(vote_average)}")
            return None
        title_key, original_key, date_key = _TITLE_FIELDS[media_type]
        wrong = [key for key in (title_key, original_key, "original_language") if not _is_text(item.get(key))]
        if wrong:
            shown = ", ".join(f"{key} {_shown(item.get(key))}" for key in wrong)
            self._drop("non_string_text", rank, batch, tmdb_id, detail=f"expected text, got {shown}")
            return None
        if tmdb_id in self._seen.get(media_type, ()):
            self._drop("duplicate_id", rank, batch, tmdb_id, quiet=True)
            return None
        raw_genres = item.get("genre_ids")
        genre_ids = [
            g
            for g in (raw_genres if isinstance(raw_genres, list) else [])
            if isinstance(g, int) and not isinstance(g, bool) and 0 <= g <= INT64_MAX
        ]
        row = {
            "trend_date": self.context.trend_date.isoformat(),
            "rank": rank,
            "id": tmdb_id,
            "title": _text(item.get(title_key)),
            "original_title": _text(item.get(original_key)),
            "original_language": _text(item.get("original_language")),
            "release_date": _iso_date(item.get(date_key)),
            "popularity": popularity,
            "vote_average": _number(vote_average),
            "vote_count": vote_count,
            "genre_ids": "|".join(str(g) for g in genre_ids),
            "media_type": media_type,
            "time_window": batch.feed.time_window,
            "extracted_at": batch.extracted_at.astimezone(dt.UTC).isoformat(),
            "genres": _genre_names(genre_ids, batch.lookups),
            "poster_url": _poster_url(item.get("poster_path"), batch.lookups),
        }
        broken = [name for name, value in row.items() if isinstance(value, str) and not schema.is_utf8(value)]
        if broken:
            self._drop("invalid_text", rank, batch, tmdb_id, detail=f"not valid Unicode in {', '.join(broken)}")
            return None
        # Only a row that is kept claims its identity: a dropped copy must not hide a good one.
        self._seen.setdefault(media_type, set()).add(tmdb_id)
        return row

    def _drop(
        self, reason: str, rank: int, batch: Batch, tmdb_id: Any = None, *, quiet: bool = False, detail: str = ""
    ) -> None:
        self._dropped[reason] += 1
        log = logger.debug if quiet else logger.warning
        log(
            "page %d, rank %d, id %s: dropped (%s%s); %d so far",
            batch.page,
            rank,
            _shown_id(tmdb_id),
            reason,
            f": {detail}" if detail else "",
            self._dropped[reason],
        )


_CLEANERS: dict[int, concurrent.futures.ThreadPoolExecutor] = {}


def _cleaner() -> concurrent.futures.ThreadPoolExecutor:
    """The one thread that cleans pages, started on first use; one per process (a fork has no parent thread)."""
    pid = os.getpid()
    executor = _CLEANERS.get(pid)
    if executor is None:
        executor = _CLEANERS[pid] = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="standardize")
    return executor


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) else None


def _shown_id(value: Any) -> str:
    """The id as it may appear in a log line: short, printable, whatever TMDB sent."""
    if value is None:
        return "none"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**30:
        return str(value)
    text = ascii(value) if not isinstance(value, int) else f"an integer of {value.bit_length()} bits"
    return text if len(text) <= 40 else text[:39] + "…"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _is_text(value: Any) -> bool:
    """A text field is a string, or absent (``null`` or missing: stored as ``""``)."""
    return value is None or isinstance(value, str)


def _shown(value: Any) -> str:
    """A wrong value as a log line may show it: its JSON type and a short form."""
    return f"{type(value).__name__} {repr(value) if isinstance(value, bool | float) else _shown_id(value)}"


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
    return _image_url(path, lookups.poster_base_url)


def _image_url(path: Any, base: str | None) -> str:
    if not base or not isinstance(path, str) or not path.startswith("/"):
        return ""
    return f"{base.rstrip('/')}{path}"


def _known_for(value: Any) -> tuple[str, str]:
    """``known_for`` as ``media_type:id`` pairs ``|``-joined, and the titles as a JSON array in the same order.

    Entries that are not a movie or a show with an integer id are skipped; a title that is
    not valid Unicode is kept as ``""`` (the person is not dropped for a title it is known for).
    """
    pairs: list[str] = []
    titles: list[str] = []
    for entry in value if isinstance(value, list) else []:
        if not isinstance(entry, Mapping):
            continue
        media_type, entry_id = entry.get("media_type"), entry.get("id")
        if media_type not in _TITLE_FIELDS or isinstance(entry_id, bool) or not isinstance(entry_id, int):
            continue
        if not 0 <= entry_id <= INT64_MAX:
            continue
        title = _text(entry.get(_TITLE_FIELDS[media_type][0]))
        pairs.append(f"{media_type}:{entry_id}")
        titles.append(title if schema.is_utf8(title) else "")
    return "|".join(pairs), json.dumps(titles, ensure_ascii=False)
