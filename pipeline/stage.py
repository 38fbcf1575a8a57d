"""Stage base classes: subclass one of these and register it under an entry point.

Every stage is an async context manager. ``open`` acquires resources (sessions,
clients, files) and ``aclose`` releases them; the runner enters every stage through
one ``AsyncExitStack`` so whatever was opened is closed, on success and on failure.

Data flow, one TMDB page at a time::

    Extractor.batches() --Batch--> Transformer.transform() --DataFrame--> Loader.write()
                                                   Loader.commit() --> Reporter.report()
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar, runtime_checkable

from pipeline.errors import ExtractError, LoadError, ReportError, StageError, TransformError
from pipeline.options import NoOptions

if TYPE_CHECKING:
    import pandas as pd

MediaType = Literal["movie", "tv", "person", "all"]
TimeWindow = Literal["day", "week"]
MEDIA_TYPES: tuple[MediaType, ...] = ("movie", "tv", "person", "all")
TIME_WINDOWS: tuple[TimeWindow, ...] = ("day", "week")

_FEED_SLUGS = {"movie": "movies", "tv": "tv", "person": "people", "all": "all"}
OptionsT = TypeVar("OptionsT")
StageT = TypeVar("StageT", bound="Stage[Any]")
T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Feed:
    """Which TMDB trending list a run is about."""

    media_type: MediaType = "movie"
    time_window: TimeWindow = "day"

    @property
    def slug(self) -> str:
        """File-name suffix in the lake: ``movies``, ``tv``, ``all`` (+ ``_week``)."""
        base = _FEED_SLUGS[self.media_type]
        return base if self.time_window == "day" else f"{base}_week"

    @property
    def label(self) -> str:
        """Human wording, e.g. ``trending movies, today``."""
        what = {"movie": "movies", "tv": "TV shows", "person": "people", "all": "movies and TV"}[self.media_type]
        when = "today" if self.time_window == "day" else "this week"
        return f"trending {what}, {when}"

    @property
    def spec(self) -> str:
        """The feed as the config and ``--feed`` name it: ``movie/day``."""
        return f"{self.media_type}/{self.time_window}"

    @property
    def is_people(self) -> bool:
        """Whether the feed's rows are people (the people schema), not titles."""
        return self.media_type == "person"

    @classmethod
    def parse(cls, text: str) -> Feed:
        """``movie/day`` → ``Feed("movie", "day")``; a ``ValueError`` naming the choices otherwise."""
        media_type, _, time_window = str(text).strip().partition("/")
        if media_type not in MEDIA_TYPES or time_window not in TIME_WINDOWS:
            raise ValueError(
                f"expected media/window with media one of {', '.join(MEDIA_TYPES)} and window one of "
                f"{', '.join(TIME_WINDOWS)}, e.g. movie/day; got {text!r}"
            )
        return cls(media_type, time_window)  # type: ignore[arg-type,unused-ignore]  # checked against the Literals


@dataclasses.dataclass(frozen=True)
class Lookups:
    """Reference data fetched once per run and used to enrich rows."""

    genres: Mapping[int, str] = dataclasses.field(default_factory=dict)
    poster_base_url: str | None = None
    profile_base_url: str | None = None
    """Where people's profile images are, at the configured size (``person`` and ``all`` feeds)."""


@dataclasses.dataclass(frozen=True)
class Batch:
    """One TMDB trending page, exactly as received, plus what is needed to clean it.

    ``page`` is the page that was requested (ranks derive from it, not from the body's own
    ``page``) and ``extracted_at`` is when it was fetched. ``body``, ``status`` and
    ``request`` are the response bytes, HTTP status and credential-free path and query
    when the page came over HTTP; the raw zone archives them verbatim (``pipeline.datalake.rawzone``).
    """

    page: int
    payload: Mapping[str, Any]
    feed: Feed
    extracted_at: dt.datetime
    lookups: Lookups = dataclasses.field(default_factory=Lookups)
    body: bytes | None = dataclasses.field(default=None, repr=False)
    status: int | None = None
    request: str | None = None


@dataclasses.dataclass(frozen=True)
class RunContext:
    """Facts about the current run that every stage may read."""

    trend_date: dt.date
    run_id: str
    started_at: dt.datetime
    dry_run: bool = False
    force: bool = False
    """Commit even where a safety guard (the loader's regression guard) would refuse."""


class Output(str):
    """Where one output went, as text (a path, a URL); ``to_stdout`` says it was written to standard output.

    A plain ``str`` is an output that did not go to standard output.
    """

    to_stdout: bool

    def __new__(cls, location: str, *, to_stdout: bool = False) -> Output:
        output = super().__new__(cls, location)
        output.to_stdout = to_stdout
        return output


FeedStatus = Literal["committed", "failed", "dry-run"]


@dataclasses.dataclass
class FeedResult:
    """What a run did for one feed: its rows and outputs, or why it failed and what that did to the lake."""

    feed: Feed
    status: FeedStatus = "failed"
    rows: int = 0
    batches: int = 0
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    counters: dict[str, float] = dataclasses.field(default_factory=dict)
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    error: str | None = None
    """The failure in one line (redacted), when ``status`` is ``failed``."""
    outcome: str | None = None
    """What the failure did to this feed's day in the lake, e.g. ``nothing was committed; ...``."""
    exception: BaseException | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Whether this feed's day was committed (or, in a dry run, fully extracted and transformed)."""
        return self.status != "failed"

    def describe_failure(self) -> str:
        """``tv/day: <error>; <outcome>``, for the run's one-line summary."""
        text = f"{self.feed.spec}: {self.error or 'failed'}"
        return f"{text}; {self.outcome}" if self.outcome else text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {
            "feed": {"media_type": self.feed.media_type, "time_window": self.feed.time_window},
            "status": self.status,
            "rows": self.rows,
            "batches": self.batches,
            "outputs": dict(self.outputs),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "counters": dict(self.counters),
            "dropped": dict(self.dropped),
            "error": self.error,
            "outcome": self.outcome,
        }


@dataclasses.dataclass
class RunResult:
    """Rows written, where they went, how long each stage took, and what was dropped."""

    run_id: str
    trend_date: dt.date
    feed: Feed
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    rows: int = 0
    batches: int = 0
    outputs: dict[str, str] = dataclasses.field(default_factory=dict)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    counters: dict[str, float] = dataclasses.field(default_factory=dict)
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    dry_run: bool = False
    lake: str = ""
    feeds: list[FeedResult] = dataclasses.field(default_factory=list)
    """One entry per feed of the run, in config order (one entry for a one-feed run)."""
    tracked: tuple[Feed, ...] = ()
    """Every feed the extractor tracks, in config order, the run's own among them. A run of some of them
    (``--feed``, a catch-up run) still reports the others, from what the lake holds for the day."""

    @property
    def failed(self) -> list[FeedResult]:
        """The feeds that failed (empty when the run did all it was asked)."""
        return [feed for feed in self.feeds if not feed.ok]

    @property
    def ok(self) -> bool:
        """Whether every feed committed."""
        return not self.failed

    @property
    def wrote_to_stdout(self) -> bool:
        """Whether a stage wrote one of the outputs to standard output."""
        return any(isinstance(output, Output) and output.to_stdout for output in self.outputs.values())

    @property
    def wall_seconds(self) -> float:
        """Seconds from start to finish (0 while running)."""
        if self.finished_at is None:
            return 0.0
        return (self.finished_at - self.started_at).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping; every value is a plain str, int, float, bool or dict."""
        return {
            "run_id": self.run_id,
            "trend_date": self.trend_date.isoformat(),
            "feed": {"media_type": self.feed.media_type, "time_window": self.feed.time_window},
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "wall_seconds": round(self.wall_seconds, 3),
            "rows": self.rows,
            "batches": self.batches,
            "outputs": dict(self.outputs),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "counters": dict(self.counters),
            "dropped": dict(self.dropped),
            "dry_run": self.dry_run,
            "lake": self.lake,
        }


@dataclasses.dataclass(frozen=True)
class Check:
    """One preflight check of a stage (``python -m pipeline check``): what, passed or not, and why.

    ``detail`` is printed as is: it must never hold a secret.
    """

    kind: str
    stage: str
    what: str
    ok: bool
    detail: str = ""


class Stage(ABC, Generic[OptionsT]):
    """Common base: typed options, a run context, and async-context-manager lifecycle."""

    kind: ClassVar[str] = "stage"
    error: ClassVar[type[StageError]] = StageError
    Options: ClassVar[type[Any]] = NoOptions

    def __init__(self, options: OptionsT, context: RunContext | None = None, *, name: str | None = None) -> None:
        """``context`` is ``None`` for a stage built outside a run (a lake reader, ``check``)."""
        self.options = options
        self._context = context
        self.name = name or type(self).__name__

    @property
    def context(self) -> RunContext:
        """The run this stage belongs to."""
        if self._context is None:
            raise self.error(f"{self.kind} {self.name!r} was built outside a run and has no run context")
        return self._context

    async def open(self) -> None:
        """Acquire resources; called once by ``__aenter__``."""

    async def aclose(self) -> None:
        """Release resources; called once by ``__aexit__``, also after failures."""

    async def __aenter__(self: StageT) -> StageT:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def preflight_check(self, what: str, detail: str = "", *, ok: bool = True) -> Check:
        """A ``Check`` of this stage."""
        return Check(self.kind, self.name, what, ok, detail)

    async def preflight(self, connect: bool) -> list[Check]:
        """Whether this stage could run: credentials present, paths there, options valid; nothing is written.

        Called on a built stage that is not open. Offline checks need no network; with
        ``connect`` a stage that talks to a service makes one cheap authenticated call to it.
        Problems are returned as failed checks, not raised. The default: the options are valid
        (building the stage checked them).
        """
        return [self.preflight_check("options", f"valid ({type(self).__module__}.{type(self).__qualname__})")]


class Extractor(Stage[OptionsT]):
    """Yields raw pages as ``Batch`` objects, in page order."""

    kind = "extractor"
    error = ExtractError

    @property
    @abstractmethod
    def feed(self) -> Feed:
        """The feed this extractor produces (its first, if it produces several); the loader names its files after it."""

    @property
    def feeds(self) -> tuple[Feed, ...]:
        """Every feed this extractor produces in a run; most produce one."""
        return (self.feed,)

    def statistics(self, feed: Feed | None = None) -> Mapping[str, float]:
        """What this extractor counted (pages, requests, retries, ...): ``feed``'s, or the whole run's without it.

        The runner reads it once per feed, when that feed's batches have ended, and once for the run, when every
        feed's have; the values become ``FeedResult.counters`` and ``RunResult.counters`` (and the manifest's).
        Return a snapshot, not a view of the tallies the extractor keeps counting in. An extractor of one feed
        may ignore ``feed``. The default: nothing counted.
        """
        return MappingProxyType({})

    @abstractmethod
    def batches(self) -> AsyncGenerator[Batch, None]:
        """Yield one ``Batch`` per page, page 1 first (an async generator: the runner closes it on failure)."""

    def feed_batches(self, feed: Feed) -> AsyncGenerator[Batch, None]:
        """The batches of one of ``feeds``, in page order; the runner consumes each feed on its own.

        An extractor of several feeds fetches them concurrently and a failure of one feed's
        generator leaves the others running. The default serves the one feed from ``batches()``.
        """
        if feed not in self.feeds:
            raise self.error(f"feed {feed.spec} is not one of this extractor's feeds", stage=self.name)
        return self.batches()


class Transformer(Stage[OptionsT]):
    """Turns each batch into a DataFrame chunk of the documented schema."""

    kind = "transformer"
    error = TransformError

    @abstractmethod
    async def transform(self, batch: Batch) -> pd.DataFrame:
        """Return the cleaned rows of one batch (possibly empty)."""

    def statistics(self) -> Mapping[str, int]:
        """How many records this transformer dropped, by reason: ``{"duplicate_id": 2}``.

        The runner reads it once per feed, when the feed's batches have ended; the values become
        ``FeedResult.dropped`` and ``RunResult.dropped`` (and the manifest's). Return a snapshot, not a view of
        the tallies the transformer keeps counting in. The default: nothing dropped.
        """
        return MappingProxyType({})


@runtime_checkable
class LakeReader(Protocol):
    """The read side of a lake: what reporters, ``history`` and other readers may use."""

    def describe(self) -> str:
        """Where the lake is, without credentials (``./lake`` or ``s3://bucket/prefix``)."""
        ...

    async def read_day(self, day: dt.date, feed: Feed) -> pd.DataFrame | None:
        """The committed cleaned data of ``day``, or ``None`` if that day is not in the lake."""
        ...


@dataclasses.dataclass(frozen=True)
class CommitInfo:
    """What the runner hands a loader at ``commit``: the run's facts, for the manifest."""

    run_id: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    counters: Mapping[str, float] = dataclasses.field(default_factory=dict)
    dropped: Mapping[str, int] = dataclasses.field(default_factory=dict)
    transformer: str = ""
    pipeline_version: str = ""


@dataclasses.dataclass(frozen=True)
class Committed:
    """What a committed day hands back: where each output went, and what happened to the lake in a few words."""

    outputs: Mapping[str, str]
    outcome: str


class LoadDay(ABC):
    """One run's write of one day, returned by ``Loader.begin``; ``commit`` or ``abort`` ends it."""

    @abstractmethod
    async def write(self, chunk: pd.DataFrame) -> None:
        """Append one cleaned chunk."""

    async def write_raw(self, batch: Batch) -> None:  # noqa: B027 - optional: a lake without a raw zone
        """Archive one raw page; loaders without a raw zone ignore it."""

    @abstractmethod
    async def commit(self, info: CommitInfo) -> Committed:
        """Make the day visible, atomically."""

    @abstractmethod
    async def abort(self) -> str:
        """Discard everything since ``begin``; the previous good data stays intact. Says what the lake holds."""


class Loader(Stage[OptionsT]):
    """The write side of a lake: ``begin`` a day, stream chunks into it, and make it visible at ``commit``.

    A loader whose lake can be read back also implements ``LakeReader`` (``describe`` and
    ``read_day``); reporters then see the committed day.
    """

    kind = "loader"
    error = LoadError

    @abstractmethod
    async def begin(self, feed: Feed, *, reuse_raw: Mapping[str, Any] | None = None) -> LoadDay:
        """Start a day's write for ``feed`` on ``context.trend_date``.

        ``reuse_raw``: the manifest entry of raw pages already in the lake (``reprocess``); the run then stores
        no raw object of its own, and its manifest names that one.
        """

    def describe(self) -> str:
        """Where the lake is, without credentials."""
        return self.name

    def planned_outputs(self, feed: Feed) -> dict[str, str]:
        """Where ``commit`` would write for ``feed``; shown by ``--dry-run``."""
        return {}


class RunLake:
    """The lake as a run's reporters see it: read-only, each day read at most once per run.

    Reporters that need the same derived data (the report model) build it once through
    ``shared``; a run whose reporters read nothing reads nothing.
    """

    def __init__(self, reader: LakeReader | None, description: str) -> None:
        self._reader = reader
        self._description = description
        self._days: dict[tuple[dt.date, Feed], asyncio.Future[pd.DataFrame | None]] = {}
        self._shared: dict[str, asyncio.Future[Any]] = {}

    def describe(self) -> str:
        """Where the lake is, without credentials."""
        return self._description

    async def read_day(self, day: dt.date, feed: Feed) -> pd.DataFrame | None:
        """The committed day, read from the lake the first time it is asked for; ``None`` without a reader."""
        if self._reader is None:
            return None
        reader = self._reader
        frame: pd.DataFrame | None = await self._once(self._days, (day, feed), lambda: reader.read_day(day, feed))
        return frame

    async def read_day_unkept(self, day: dt.date, feed: Feed) -> pd.DataFrame | None:
        """Like ``read_day``, but a day not read yet is not kept: a 30-day trend window stays out of memory."""
        future = self._days.get((day, feed))
        if future is not None:
            frame: pd.DataFrame | None = await asyncio.shield(future)
            return frame
        return None if self._reader is None else await self._reader.read_day(day, feed)

    async def shared(self, key: str, build: Callable[[], Awaitable[T]]) -> T:
        """``await build()`` the first time ``key`` is asked for; the same result after that."""
        result: T = await self._once(self._shared, key, build)
        return result

    @staticmethod
    async def _once(memo: dict[Any, asyncio.Future[Any]], key: Any, build: Callable[[], Awaitable[Any]]) -> Any:
        future = memo.get(key)
        if future is None:
            future = asyncio.ensure_future(build())
            memo[key] = future
        return await asyncio.shield(future)


class Reporter(Stage[OptionsT]):
    """Publishes a finished run."""

    kind = "reporter"
    error = ReportError

    @abstractmethod
    async def report(self, result: RunResult, lake: RunLake) -> dict[str, str]:
        """Write the report; return ``{output kind: location}`` (may be empty).

        ``lake`` is the run's lake, read-only: each day is read once however many reporters ask.
        """

    async def prepare(self) -> None:
        """Get ready for ``report`` while the run still fetches: import and warm what it needs; write no output.

        Called once per run that may report (not a dry run), as soon as the run's first rows are cleaned,
        and runs beside the rest of the extraction; ``report`` is called only after it ended. An error
        raised here is logged as a warning and the report goes ahead without the head start; when the
        run fails or is stopped, a ``prepare`` still running is cancelled. The default does nothing.
        """

    async def on_failure(self, context: RunContext, message: str) -> None:
        """The run failed: ``message`` is its one-line error, redacted, ending with what happened to the lake.

        Called by ``run_pipeline`` once per failed run, after every stage was closed (open what you need
        here), also when the failure came after the commit. An error raised here is logged, never raised.
        The default does nothing: most reporters publish finished runs only.
        """


BASES: dict[str, type[Stage[Any]]] = {base.kind: base for base in (Extractor, Transformer, Loader, Reporter)}
"""The base class each stage kind (``pipeline.kinds.KINDS``) subclasses."""
