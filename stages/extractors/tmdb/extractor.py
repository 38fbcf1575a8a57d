"""``tmdb-trending`` extractor: TMDB's trending lists, pages fetched concurrently at the rate-limit floor.

One run fetches one or several feeds (``feeds: [movie/day, tv/day, person/day]``) over one
session, one shared rate limiter and one in-flight cap, with one set of lookups (genres and
configuration) fetched once. Per feed, page 1 is fetched first to learn ``total_pages``;
the other pages go into a queue drained by a fixed pool of ``concurrency`` workers. The
feeds' workers all wait for the same limiter, so their pages interleave: three feeds of
100 pages take about as long as one of 300. A reorder buffer per feed yields batches in
page order as soon as they are contiguous, so the next stages stream while fetching
continues; a window bounds how far workers may run ahead of the consumer.

Each feed is its own async generator (``feed_batches``): one feed failing (TMDB refusing
that list) does not stop the others. ``batches()`` merges every feed, failing at the first error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import ipaddress
import logging
import os
import re
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TextIO, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from pipeline.errors import ConfigError, ExtractError
from pipeline.options import OptionError, StageOptions
from pipeline.stage import Batch, Check, Extractor, Feed, Lookups, MediaType, RunContext, TimeWindow
from stages.extractors.tmdb.client import CAUSES, DEFAULT_MAX_BODY_BYTES, Credentials, RetryPolicy, Sleep, TmdbClient
from stages.extractors.tmdb.lookup_cache import LookupCache, default_folder
from stages.extractors.tmdb.progress import Progress
from stages.extractors.tmdb.ratelimit import AdaptiveRateLimiter

if TYPE_CHECKING:
    import aiohttp  # imported in open(), so that `check` builds this stage without it

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.themoviedb.org"
MAX_PAGES = 500
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")
_POSTER_SIZE = re.compile(r"^(w\d{2,4}|original)$")
_PROFILE_SIZE = re.compile(r"^([wh]\d{2,4}|original)$")
_USER_AGENT = "tmdb-trending-pipeline/0.1 (+aiohttp)"
T = TypeVar("T")
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The current time in UTC."""
    return dt.datetime.now(dt.UTC)


def check_live_date(trend_date: dt.date, now: dt.datetime) -> None:
    """A live list is today's: refuse to label it with any date but today or yesterday (UTC)."""
    today = now.astimezone(dt.UTC).date()
    if trend_date in (today, today - dt.timedelta(days=1)):
        return
    raise ConfigError(
        f"--date {trend_date.isoformat()}: tmdb-trending fetches the list as it is now (UTC {today.isoformat()}) "
        "and can only label it today or yesterday; for another day use the 'replay' extractor or "
        "'pipeline reprocess' on the raw zone"
    )


def check_base_url(url: str) -> str:
    """Validate a base URL (scheme and host, no query) and return it without a trailing ``/``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL with a host, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or a fragment")
    return url.rstrip("/")


class FeedOptions(StageOptions):
    """One entry of ``feeds`` written as a mapping: ``{feed: tv/day, pages: 50}``."""

    feed: str
    pages: int | None = Field(default=None, ge=1, le=MAX_PAGES)

    @field_validator("feed")
    @classmethod
    def _feed(cls, value: str) -> str:
        return Feed.parse(value).spec


class TmdbOptions(StageOptions):
    """Options of the ``tmdb-trending`` extractor; defaults are documented in the README."""

    media_type: MediaType = "movie"
    time_window: TimeWindow = "day"
    feeds: tuple[FeedOptions, ...] | None = None
    """Several lists in one run, ``[movie/day, {feed: person/day, pages: 5}]``; replaces media_type/time_window."""
    pages: int = Field(default=20, ge=1, le=MAX_PAGES)
    language: str | None = None
    rate_limit: float = Field(default=35.0, ge=0.1, le=1000)
    """Requests per second; at least 0.1 (a 500-page day then takes 83 minutes): a tiny rate never finishes."""
    concurrency: int = Field(default=10, ge=1, le=100)
    timeout: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff: float = Field(default=0.5, ge=0, le=60)
    max_backoff: float = Field(default=30.0, ge=0, le=600)
    base_url: str = DEFAULT_BASE_URL
    """TMDB or a TMDB-compatible server; the configs take it from ``${TMDB_BASE_URL:-...}``."""
    enrich: bool = True
    poster_size: str = "w500"
    profile_size: str = "h632"
    progress_interval: float = Field(default=5.0, gt=0, le=3600)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024, le=1 << 30)
    lookup_cache_hours: float = Field(default=72.0, ge=0, le=24 * 30)
    """How long the configuration and genre lists are reused from the user's cache folder; 0 fetches them every run."""

    @field_validator("language")
    @classmethod
    def _language(cls, value: str | None) -> str | None:
        if value is not None and not _LANGUAGE.match(value):
            raise ValueError(f"expected an ISO 639-1 code such as 'en' or 'en-US', got {value!r}")
        return value

    @field_validator("poster_size")
    @classmethod
    def _poster_size(cls, value: str) -> str:
        if not _POSTER_SIZE.match(value):
            raise ValueError(f"expected a TMDB size such as 'w500' or 'original', got {value!r}")
        return value

    @field_validator("profile_size")
    @classmethod
    def _profile_size(cls, value: str) -> str:
        if not _PROFILE_SIZE.match(value):
            raise ValueError(f"expected a TMDB size such as 'h632', 'w185' or 'original', got {value!r}")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return check_base_url(value)

    @field_validator("feeds", mode="before")
    @classmethod
    def _feed_entries(cls, value: Any) -> Any:
        """A plain ``movie/day`` entry is ``{feed: movie/day}``."""
        if isinstance(value, list | tuple):
            return [{"feed": entry} if isinstance(entry, str) else entry for entry in value]
        return value

    @model_validator(mode="after")
    def _feeds_once(self) -> TmdbOptions:
        if self.feeds is None:
            return self
        if not self.feeds:
            raise OptionError("feeds", "must name at least one feed, e.g. [movie/day]")
        if {"media_type", "time_window"} & self.model_fields_set:
            raise OptionError("feeds", "give either feeds or media_type/time_window, not both")
        seen: set[str] = set()
        for index, entry in enumerate(self.feeds):
            if entry.feed in seen:
                raise OptionError(f"feeds[{index}]", f"{entry.feed} is listed twice")
            seen.add(entry.feed)
        return self

    def feed_plan(self) -> tuple[tuple[Feed, int], ...]:
        """Every feed of the run with its page count (the single-feed options are a one-feed list)."""
        if self.feeds is None:
            return ((Feed(self.media_type, self.time_window), self.pages),)
        return tuple((Feed.parse(entry.feed), entry.pages or self.pages) for entry in self.feeds)

    @model_validator(mode="after")
    def _backoff_within_max(self) -> TmdbOptions:
        if self.backoff > self.max_backoff:
            raise OptionError("backoff", f"must not exceed max_backoff ({self.max_backoff:g}), got {self.backoff:g}")
        return self


@dataclasses.dataclass(frozen=True)
class _Done:
    """What the workers hand over: finished pages (or their error) and the window they take slots from."""

    queue: asyncio.Queue[tuple[int, Batch | Exception]]
    window: asyncio.Semaphore


@dataclasses.dataclass
class _FeedRun:
    """One feed of a run: its page count, its client (shared limiter and in-flight cap) and counters."""

    feed: Feed
    pages: int
    client: TmdbClient
    counters: Counter[str]
    started: float = 0.0


class TmdbTrendingExtractor(Extractor[TmdbOptions]):
    """Fetches TMDB trending lists, page by page, concurrently and politely; several feeds share one limiter."""

    Options = TmdbOptions

    def __init__(
        self,
        options: TmdbOptions,
        context: RunContext,
        *,
        name: str | None = None,
        session: aiohttp.ClientSession | None = None,
        sleep: Sleep = asyncio.sleep,
        progress_stream: TextIO | None = None,
        env: Mapping[str, str] | None = None,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(options, context, name=name)
        self._clock = clock
        self._session = session
        self._owns_session = False
        self._sleep = sleep
        self._progress_stream = progress_stream
        self._env = env
        self._plan = options.feed_plan()
        self._client: TmdbClient | None = None
        self._progress: Progress | None = None
        self._runs: dict[Feed, _FeedRun] = {}
        self._lookups: asyncio.Task[Lookups] | None = None
        self._started: float | None = None
        self._counters: Counter[str] = Counter()  # the run's; each feed's are in its _FeedRun
        self.limiter: AdaptiveRateLimiter | None = None
        self.base_url = ""

    @property
    def feed(self) -> Feed:
        """The first (usually the only) trending list of the run."""
        return self._plan[0][0]

    @property
    def feeds(self) -> tuple[Feed, ...]:
        """Every trending list of the run, in config order."""
        return tuple(feed for feed, _ in self._plan)

    def statistics(self, feed: Feed | None = None) -> Mapping[str, float]:
        """The counters (pages, results, requests, retries, ...) of ``feed``, or of the whole run, lookups included.

        With a single feed, the feed's are the run's.
        """
        if feed is None:
            return MappingProxyType(dict(self._counters))
        run = self._runs.get(feed)
        return MappingProxyType(dict(run.counters) if run is not None else {})

    async def open(self) -> None:
        """Check the date, read the credentials (a ``ConfigError`` before any request) and create the session."""
        check_live_date(self.context.trend_date, self._clock())
        env = os.environ if self._env is None else self._env
        credentials = Credentials.from_env(env)
        self.base_url = self.options.base_url
        if urlsplit(self.base_url).scheme == "http" and not _is_loopback(self.base_url):
            logger.warning(
                "base_url %s is plain http: the TMDB secret would cross the network unencrypted", self.base_url
            )
        opts = self.options
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=opts.concurrency, limit_per_host=opts.concurrency),
                headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
            )
            self._owns_session = True
        self.limiter = AdaptiveRateLimiter(opts.rate_limit)
        slugs = "+".join(feed.slug for feed in self.feeds)
        self._progress = Progress(
            f"{self.name} {slugs}",
            stream=self._progress_stream,
            interval=opts.progress_interval,
            log=logger,
        )
        in_flight = asyncio.Semaphore(opts.concurrency)  # one cap for every feed of the run

        def client(counters: Counter[str]) -> TmdbClient:
            assert self._session is not None and self.limiter is not None
            return TmdbClient(
                self._session,
                base_url=self.base_url,
                credentials=credentials,
                limiter=self.limiter,
                concurrency=opts.concurrency,
                timeout=opts.timeout,
                policy=RetryPolicy(opts.max_attempts, opts.backoff, opts.max_backoff),
                stage=self.name,
                counters=counters,
                progress=self._progress,
                sleep=self._sleep,
                max_body_bytes=opts.max_body_bytes,
                in_flight=in_flight,
            )

        # With one feed its counters are the run's (as they always were); with several, each
        # feed counts its own and the run's counters add them up with the lookups'.
        single = len(self._plan) == 1
        self._client = client(self._counters if single else Counter())
        self._runs = {
            feed: _FeedRun(feed, pages, *((self._client, self._counters) if single else _own(client)))
            for feed, pages in self._plan
        }
        logger.info(
            "%s: %s from %s (%s), up to %s pages, %g req/s, %d in flight",
            self.name,
            "; ".join(feed.label for feed in self.feeds),
            self.base_url,
            credentials.scheme,
            "/".join(str(pages) for _, pages in self._plan),
            opts.rate_limit,
            opts.concurrency,
        )

    async def preflight(self, connect: bool) -> list[Check]:
        """Options valid, credentials and base URL present; with ``connect``, one ``GET /3/configuration``."""
        checks = await super().preflight(connect)
        env = os.environ if self._env is None else self._env
        try:
            credentials = Credentials.from_env(env)
        except ConfigError as exc:
            return [*checks, self.preflight_check("credentials", str(exc), ok=False)]
        source = "TMDB_ACCESS_TOKEN" if credentials.bearer else "TMDB_API_KEY"
        checks.append(self.preflight_check("credentials", f"{source} is set ({credentials.scheme})"))
        base_url = self.options.base_url
        checks.append(self.preflight_check("base URL", base_url))
        if not connect:
            return [*checks, self.preflight_check("TMDB API", "not called; --connect makes one GET /3/configuration")]
        started = time.monotonic()
        try:
            async with self:
                client, _ = self._require()
                # One cheap authenticated call, not retried: a preflight should answer at once.
                client.policy = RetryPolicy(1, 0.0, 0.0)
                await client.get_json("/3/configuration", {}, what="configuration", valid=_is_configuration)
        except ExtractError as exc:
            return [*checks, self.preflight_check("TMDB API", exc.args[0], ok=False)]  # without "extractor '...': "
        except ConfigError as exc:
            return [*checks, self.preflight_check("TMDB API", str(exc), ok=False)]
        took = time.monotonic() - started
        return [*checks, self.preflight_check("TMDB API", f"GET {base_url}/3/configuration: OK in {took:.2f}s")]

    async def aclose(self) -> None:
        """Close the session if this extractor created it; an injected one belongs to the caller."""
        if self._lookups is not None:
            await _settle([self._lookups])
            self._lookups = None
        if self._progress is not None:
            self._progress.close()
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None
            self._owns_session = False

    async def batches(self) -> AsyncGenerator[Batch, None]:
        """Every feed's pages: one feed in page order; several merged as they come, failing at the first error."""
        if len(self._plan) == 1:
            async with contextlib.aclosing(self.feed_batches(self.feed)) as only:
                async for batch in only:
                    yield batch
            return
        async with contextlib.aclosing(_merge([self.feed_batches(feed) for feed in self.feeds])) as merged:
            async for batch in merged:
                yield batch

    async def feed_batches(self, feed: Feed) -> AsyncGenerator[Batch, None]:
        """One feed: page 1, then the rest in page order as soon as they are contiguous."""
        _, progress = self._require()
        run = self._runs.get(feed)
        if run is None:
            raise ExtractError(f"feed {feed.spec} is not one of this extractor's feeds", stage=self.name)
        run.started = time.monotonic()
        if self._started is None:
            self._started = run.started
        completed = False
        try:
            first, lookups = await self._first_page(run)
            first = dataclasses.replace(first, lookups=lookups)
            last = self._last_page(run, first.payload)
            progress.add_total(last)
            progress.page_done()
            # The workers start before page 1 is handed over: they fetch while the consumer
            # works on it (the first page also pays for the consumer's imports).
            workers, done = self._start_workers(run, last, lookups)
            try:
                yield first
                async with contextlib.aclosing(self._reorder(run, progress, last, done)) as rest:
                    async for batch in rest:
                        yield batch
            finally:
                await _settle(workers)
            completed = True
        finally:
            self._finish(run, completed)

    async def _first_page(self, run: _FeedRun) -> tuple[Batch, Lookups]:
        """Page 1 and the run's lookups, concurrently; the first failure cancels the other, and both are awaited.

        The lookups are one task for the whole run: a feed awaits it shielded, so a feed that
        fails never cancels the lookups the other feeds wait for.
        """
        page_task = asyncio.create_task(self._page(run, 1, Lookups()), name=f"{self.name}-{run.feed.slug}-page-1")
        lookups_task = (
            asyncio.create_task(self._shared_lookups(), name=f"{self.name}-{run.feed.slug}-lookups")
            if self.options.enrich
            else None
        )
        tasks: list[asyncio.Task[Any]] = [page_task] if lookups_task is None else [page_task, lookups_task]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            # A lookup that failed while page 1 was still retrying fails the run now, not after page 1.
            for task in tasks:
                error = task.exception() if task.done() and not task.cancelled() else None
                if error is not None:
                    raise error
            return page_task.result(), (lookups_task.result() if lookups_task is not None else Lookups())
        finally:
            await _settle(tasks)

    async def _shared_lookups(self) -> Lookups:
        if self._lookups is None:
            client, _ = self._require()
            self._lookups = asyncio.create_task(self._fetch_lookups(client), name=f"{self.name}-lookups")
        return await asyncio.shield(self._lookups)

    def _require(self) -> tuple[TmdbClient, Progress]:
        if self._client is None or self._progress is None:
            raise ExtractError("batches() called before open()", stage=self.name)
        return self._client, self._progress

    def _last_page(self, run: _FeedRun, payload: Mapping[str, Any]) -> int:
        total = payload.get("total_pages")
        where = "" if len(self._plan) == 1 else f"{run.feed.spec} "
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            # Guessing one page here would silently cut the list short.
            raise ExtractError(
                f"{where}page 1: 'total_pages' must be a whole number, got {_clip(total)}: "
                "cannot tell how many pages to fetch",
                stage=self.name,
            )
        reported = total
        run.counters["total_pages_reported"] = reported
        last = max(1, min(run.pages, reported, MAX_PAGES))
        if last < run.pages:
            logger.info("%s: %sTMDB reports %d pages; fetching %d, not %d", self.name, where, reported, last, run.pages)
        return last

    def _start_workers(self, run: _FeedRun, last: int, lookups: Lookups) -> tuple[list[asyncio.Task[None]], _Done]:
        """A fixed pool fetching pages 2..last at once; the caller cancels and awaits the workers."""
        todo: asyncio.Queue[int] = asyncio.Queue()
        for page in range(2, last + 1):
            todo.put_nowait(page)
        done: asyncio.Queue[tuple[int, Batch | Exception]] = asyncio.Queue()
        # Pages taken but not yet yielded; bounds the reorder buffer when the consumer is slow.
        window = asyncio.Semaphore(max(4 * self.options.concurrency, 32))

        async def worker() -> None:
            while True:
                await window.acquire()
                try:
                    page = todo.get_nowait()
                except asyncio.QueueEmpty:
                    window.release()
                    return
                try:
                    batch = await self._page(run, page, lookups)
                except Exception as exc:  # handed to the consumer, which raises it
                    done.put_nowait((page, exc))
                    return
                done.put_nowait((page, batch))

        workers = [
            asyncio.create_task(worker(), name=f"{self.name}-{run.feed.slug}-worker-{i}")
            for i in range(min(self.options.concurrency, last - 1))
        ]
        return workers, _Done(done, window)

    async def _reorder(self, run: _FeedRun, progress: Progress, last: int, done: _Done) -> AsyncGenerator[Batch, None]:
        """Pages 2..last in page order as the workers deliver them."""
        buffer: dict[int, Batch] = {}
        expected = 2
        counters = run.counters
        while expected <= last:
            page, item = await done.queue.get()
            if isinstance(item, Exception):
                raise item
            buffer[page] = item
            counters["reorder_buffer_peak"] = max(counters["reorder_buffer_peak"], len(buffer))
            while expected in buffer:
                batch = buffer.pop(expected)
                expected += 1
                done.window.release()
                progress.page_done()
                yield batch

    async def _page(self, run: _FeedRun, page: int, lookups: Lookups) -> Batch:
        params = {"page": str(page)}
        if self.options.language:
            params["language"] = self.options.language
        feed = run.feed
        path = f"/3/trending/{feed.media_type}/{feed.time_window}"
        what = f"page {page}" if len(self._plan) == 1 else f"{feed.spec} page {page}"
        fetched = await run.client.get(path, params, what=what, valid=_is_page)
        payload = fetched.document
        run.counters["pages"] += 1
        run.counters["results"] += len(payload["results"])
        return Batch(
            page=page,
            payload=payload,
            feed=feed,
            extracted_at=self._clock().astimezone(dt.UTC),
            lookups=lookups,
            body=fetched.body,
            status=fetched.status,
            request=fetched.request,
        )

    async def _fetch_lookups(self, client: TmdbClient) -> Lookups:
        """Genre names (movie and/or TV, as the feeds need) and the image base URLs, once per run: from the
        lookup cache while they are younger than ``lookup_cache_hours``, else fetched (and cached)."""
        params = {"language": self.options.language} if self.options.language else {}
        media = {feed.media_type for feed in self.feeds}
        kinds = [kind for kind in ("movie", "tv") if kind in media or "all" in media]
        wanted: dict[str, tuple[str, dict[str, str], str, Callable[[Any], bool]]] = {
            "configuration": ("/3/configuration", {}, "configuration lookup", _is_configuration),
            **{
                f"genre/{kind}": (f"/3/genre/{kind}/list", params, f"{kind} genre lookup", _is_genre_list)
                for kind in kinds
            },
        }
        cache = None
        if self.options.lookup_cache_hours > 0:
            cache = LookupCache(
                default_folder(), self.options.base_url, self.options.language, self.options.lookup_cache_hours * 3600
            )
            await asyncio.to_thread(cache.load)
        documents: dict[str, Any] = {name: cache and cache.fresh(name, spec[3]) for name, spec in wanted.items()}
        # The first lookup to fail cancels the others, and all are awaited: no stray task, no lost error.
        try:
            async with asyncio.TaskGroup() as group:
                tasks = {
                    name: group.create_task(client.get_json(path, query, what=what, valid=valid))
                    for name, (path, query, what, valid) in wanted.items()
                    if documents[name] is None
                }
        except* Exception as failed:
            raise failed.exceptions[0] from None
        fetched = {name: task.result() for name, task in tasks.items()}
        documents.update(fetched)
        if len(fetched) < len(wanted):
            cached = len(wanted) - len(fetched)
            logger.debug("%s: %d of %d lookups from the lookup cache", self.name, cached, len(wanted))
        if cache is not None and fetched:
            await asyncio.to_thread(cache.save, fetched)
        config, genre_lists = documents["configuration"], [documents[f"genre/{kind}"] for kind in kinds]
        genres: dict[int, str] = {}
        for document in genre_lists:
            for genre in document["genres"]:
                if (
                    isinstance(genre, Mapping)
                    and isinstance(genre.get("id"), int)
                    and isinstance(genre.get("name"), str)
                ):
                    genres.setdefault(genre["id"], genre["name"])
        images = config["images"]
        self._check_size(images, "poster_sizes", self.options.poster_size, "poster_size")
        secure = images["secure_base_url"].rstrip("/")
        base = f"{secure}/{self.options.poster_size}"
        profiles = None
        if media & {"person", "all"}:
            self._check_size(images, "profile_sizes", self.options.profile_size, "profile_size")
            profiles = f"{secure}/{self.options.profile_size}"
        logger.debug("%s: %d genres, poster base %s, profile base %s", self.name, len(genres), base, profiles)
        return Lookups(genres=genres, poster_base_url=base, profile_base_url=profiles)

    def _check_size(self, images: Mapping[str, Any], key: str, size: str, option: str) -> None:
        sizes = images.get(key)
        if isinstance(sizes, list) and sizes and size not in sizes:
            logger.warning(
                "%s: %s %r is not one of TMDB's %s %s",
                self.name,
                option,
                size,
                key.replace("_", " "),
                ", ".join(map(str, sizes)),
            )

    def _finish(self, run: _FeedRun, completed: bool) -> None:
        now = time.monotonic()
        wall = now - run.started
        counters = run.counters
        requests = counters["requests"]
        # RunResult.counters holds floats; Counter[str] is typed for ints only.
        counters["wall_seconds"] = round(wall, 3)  # type: ignore[assignment]
        counters["requests_per_second"] = round(requests / wall, 2) if wall > 0 else 0.0  # type: ignore[assignment]
        if self.limiter is not None:
            counters["rate_cuts"] = self.limiter.cuts
        several = len(self._plan) > 1
        if several:
            self._add_up(now)
        elif self._progress is not None:
            self._progress.close()
        by_cause = ", ".join(f"{cause} {counters[f'retries_{cause}']}" for cause in CAUSES)
        logger.info(
            "%s: %s%s: %d/%d pages, %d results, %d requests, %d retries (%s), %d HTTP 429, %.2fs, %.1f req/s",
            self.name,
            f"{run.feed.spec} " if several else "",
            "done" if completed else "stopped",
            counters["pages"],
            run.pages if several else self._progress.total if self._progress is not None else 0,
            counters["results"],
            requests,
            counters["retries"],
            by_cause,
            counters["http_429"],
            wall,
            requests / wall if wall > 0 else 0.0,
        )

    def _add_up(self, now: float) -> None:
        """The run's counters with several feeds: the lookups' plus every feed's, and the run's own rate."""
        lookups = self._client.counters if self._client is not None else Counter()
        total: Counter[str] = Counter({k: v for k, v in lookups.items()})
        for run in self._runs.values():
            for key in ("pages", "results", "requests", "retries", "http_429", *(f"retries_{c}" for c in CAUSES)):
                total[key] += run.counters[key]
            total["reorder_buffer_peak"] = max(total["reorder_buffer_peak"], run.counters["reorder_buffer_peak"])
        wall = now - (self._started if self._started is not None else now)
        total["wall_seconds"] = round(wall, 3)  # type: ignore[assignment]
        total["requests_per_second"] = round(total["requests"] / wall, 2) if wall > 0 else 0.0  # type: ignore[assignment]
        total["rate_cuts"] = self.limiter.cuts if self.limiter is not None else 0
        self._counters.clear()
        self._counters.update({k: v for k, v in total.items() if k not in ("feeds",)})


def _own(client: Callable[[Counter[str]], TmdbClient]) -> tuple[TmdbClient, Counter[str]]:
    """A feed's own client and counters (several feeds share the session, limiter and in-flight cap)."""
    counters: Counter[str] = Counter()
    return client(counters), counters


async def _merge(streams: list[AsyncGenerator[Batch, None]]) -> AsyncGenerator[Batch, None]:
    """Batches of several generators as they come; the first failure stops (and closes) them all."""
    queue: asyncio.Queue[Batch | BaseException | None] = asyncio.Queue(maxsize=len(streams) * 4)

    async def pump(stream: AsyncGenerator[Batch, None]) -> None:
        try:
            async with contextlib.aclosing(stream):
                async for batch in stream:
                    await queue.put(batch)
        except Exception as exc:
            await queue.put(exc)
            return
        await queue.put(None)

    tasks = [asyncio.create_task(pump(stream)) for stream in streams]
    running = len(tasks)
    try:
        while running:
            item = await queue.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        await _settle(tasks)


def _is_page(document: Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("results"), list)


def _is_genre_list(document: Any) -> bool:
    return isinstance(document, dict) and isinstance(document.get("genres"), list)


def _is_configuration(document: Any) -> bool:
    images = document.get("images") if isinstance(document, dict) else None
    return isinstance(images, dict) and isinstance(images.get("secure_base_url"), str)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _settle(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel what still runs and await everything, so no task's exception goes unretrieved."""
    for task in tasks:
        if not task.done():
            task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _clip(value: Any, width: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"
