"""A small local TMDB stand-in (aiohttp) that behaves like the facts in ``/work/shared/TMDB.md``.

Knobs: per-request latency, pretty-printed bodies, a wrong ``page`` field in every body,
a per-second server rate cap answering 429 (with an optional ``Retry-After``), a fault
rate (JSON 500/503, HTML 502, connection resets, truncated JSON on 200, slow answers),
churn (new titles pushed onto the top of the list after every trending response),
``total_pages``, and Bearer / ``api_key`` auth checks answering 401 with TMDB's code 7
body. Pages above 500 answer 400 with code 22. ``list_errors`` makes one list fail
(``{"tv/day": 500}``: every page of it answers that status with TMDB's body) while the
others answer. Person results (``person`` lists, and every tenth result of ``all``) have
the shape TMDB.md describes, nulls, missing keys and empty ``known_for`` included.

It records what a client did, measured on the server side: requests, the peak number in
flight, arrival times (for the peak rate over any one-second window), statuses, faults, and
the last body sent for each trending page.

Run it standalone for benchmarks: ``python -m tests.support.tmdb_standin --port 0`` prints
``PORT <n>``; ``POST /_standin/config`` (JSON) reconfigures it and resets the stats,
``GET /_standin/stats`` returns them.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import collections
import contextlib
import dataclasses
import json
import random
import time
from typing import Any

from aiohttp import web

PAGE_SIZE = 20
FAULTS = ("500", "503", "html502", "reset", "truncated", "slow")
MOVIE_GENRES = [
    {"id": 28, "name": "Action"},
    {"id": 12, "name": "Adventure"},
    {"id": 16, "name": "Animation"},
    {"id": 35, "name": "Comedy"},
    {"id": 80, "name": "Crime"},
    {"id": 18, "name": "Drama"},
]
TV_GENRES = [
    {"id": 10759, "name": "Action & Adventure"},
    {"id": 16, "name": "Animation"},
    {"id": 35, "name": "Comedy"},
    {"id": 18, "name": "Drama"},
]
CONFIGURATION = {
    "images": {
        "base_url": "http://image.tmdb.org/t/p/",
        "secure_base_url": "https://image.tmdb.org/t/p/",
        "poster_sizes": ["w92", "w154", "w185", "w342", "w500", "w780", "original"],
        "profile_sizes": ["w45", "w185", "h632", "original"],
    },
    "change_keys": [],
}
_LIST_ERRORS = {
    401: (7, "Invalid API key: You must be granted a valid key."),
    404: (34, "The resource you requested could not be found."),
    500: (11, "Internal error: Something went wrong, contact TMDb."),
    503: (9, "Service offline: This service is temporarily offline, try again later."),
}
_DEPARTMENTS = ["Acting", "Directing", "Writing", "Production", None]
_NAMES = ["Person {id}", "山田 太郎 {id}", "김민수 {id}", "Zoë O'Brien-Smith {id}"]
_HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)


@dataclasses.dataclass
class StandinConfig:
    """How the stand-in behaves; every field can be set from JSON."""

    total_pages: int = 500
    latency: float = 0.0
    rate_cap: float | None = None
    rate_window: float = 1.0
    """The window ``rate_cap`` counts requests in: one second, as TMDB does. A test may shrink it together with
    its client's rate, to see the same 429s in a quarter of the time."""
    retry_after: str | None = None
    fault_rate: float = 0.0
    faults: tuple[str, ...] = ("500", "html502", "reset", "truncated")
    slow_seconds: float = 5.0
    churn: int = 0
    token: str | None = None
    api_key: str | None = None
    seed: int = 7
    pretty: bool = False
    body_page: int | None = None
    list_errors: dict[str, int] = dataclasses.field(default_factory=dict)
    """``media/window`` → HTTP status every page of that list answers (401, 404, 500, 503)."""

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> StandinConfig:
        """Build from a JSON mapping (lists become tuples)."""
        values = dict(raw)
        if "faults" in values:
            values["faults"] = tuple(values["faults"])
        return cls(**values)


@dataclasses.dataclass
class StandinStats:
    """What clients did, seen from the server."""

    requests: int = 0
    trending_requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    arrivals: list[float] = dataclasses.field(default_factory=list)
    statuses: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    faults: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    auth: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    pages: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    paths: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    sequence: list[str] = dataclasses.field(default_factory=list)
    """Every request's path, in order of arrival."""
    bodies: dict[int, bytes] = dataclasses.field(default_factory=dict)

    def peak_in_window(self, window: float = 1.0) -> int:
        """The most requests that arrived within any ``window`` seconds."""
        times = sorted(self.arrivals)
        best = 0
        for i, start in enumerate(times):
            best = max(best, bisect.bisect_right(times, start + window - 1e-9) - i)
        return best

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        span = (max(self.arrivals) - min(self.arrivals)) if len(self.arrivals) > 1 else 0.0
        return {
            "requests": self.requests,
            "trending_requests": self.trending_requests,
            "max_in_flight": self.max_in_flight,
            "peak_per_second": self.peak_in_window(1.0),
            "span_seconds": round(span, 3),
            # time.monotonic() of this process: a benchmark on the same machine compares it with its own
            "first_arrival": min(self.arrivals) if self.arrivals else None,
            "last_arrival": max(self.arrivals) if self.arrivals else None,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "faults": dict(self.faults),
            "auth": dict(self.auth),
        }


class TmdbStandin:
    """The stand-in server; ``await start()`` returns its base URL."""

    def __init__(self, config: StandinConfig | None = None, *, control: bool = False) -> None:
        self.config = config or StandinConfig()
        self.stats = StandinStats()
        self._rng = random.Random(self.config.seed)
        self._accepted: collections.deque[float] = collections.deque()
        self._inserted = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.open_gate = asyncio.Event()
        """Cleared, every request waits until it is set again: a test holds a client mid-run this way."""
        self.open_gate.set()
        self._held = 0
        self._held_changed = asyncio.Condition()
        self.app = web.Application()
        self.app.router.add_get("/3/trending/{media_type}/{time_window}", self._trending)
        self.app.router.add_get("/3/genre/{kind}/list", self._genres)
        self.app.router.add_get("/3/configuration", self._configuration)
        if control:
            self.app.router.add_post("/_standin/config", self._set_config)
            self.app.router.add_get("/_standin/stats", self._get_stats)

    def reconfigure(self, config: StandinConfig) -> None:
        """Switch behaviour and start counting afresh."""
        self.config = config
        self.stats = StandinStats()
        self._rng = random.Random(config.seed)
        self._accepted.clear()
        self._inserted = 0

    async def held(self, count: int) -> None:
        """Wait until ``count`` requests wait at the closed ``open_gate``."""
        async with self._held_changed:
            await self._held_changed.wait_for(lambda: self._held >= count)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Listen on ``host:port`` (0 picks a free port) and return the base URL."""
        # No access log: it would print request URLs, api_key and all.
        self._runner = web.AppRunner(self.app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = self._runner.addresses
        self.base_url = f"http://{host}:{sockets[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        """Stop listening and close open connections."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- the gate every API request passes --------------------------------------------
    async def _gate(self, request: web.Request) -> web.StreamResponse | None:
        """Auth, rate cap, faults and latency; a response here replaces the real answer."""
        now = time.monotonic()
        stats = self.stats
        stats.requests += 1
        stats.arrivals.append(now)
        stats.paths[request.path] += 1
        stats.sequence.append(request.path)
        auth_header = request.headers.get("Authorization", "")
        query_key = request.query.get("api_key")
        stats.auth["bearer" if auth_header.startswith("Bearer ") else "api_key" if query_key else "none"] += 1
        cfg = self.config
        if (cfg.token is not None and auth_header != f"Bearer {cfg.token}") or (
            cfg.token is None and cfg.api_key is not None and query_key != cfg.api_key
        ):
            return _error(401, 7, "Invalid API key: You must be granted a valid key.")
        if cfg.rate_cap is not None:
            while self._accepted and now - self._accepted[0] >= cfg.rate_window:
                self._accepted.popleft()
            if len(self._accepted) >= cfg.rate_cap:
                response = _error(429, 25, f"Your request count (#) is over the allowed limit of ({cfg.rate_cap:g}).")
                if cfg.retry_after is not None:
                    response.headers["Retry-After"] = cfg.retry_after
                return response
            self._accepted.append(now)
        if cfg.latency:
            await asyncio.sleep(cfg.latency)
        if not self.open_gate.is_set():
            async with self._held_changed:
                self._held += 1
                self._held_changed.notify_all()
            try:
                await self.open_gate.wait()
            finally:
                self._held -= 1
        if cfg.fault_rate and self._rng.random() < cfg.fault_rate:
            fault = self._rng.choice(cfg.faults)
            stats.faults[fault] += 1
            return await self._fault(fault, request)
        return None

    async def _fault(self, fault: str, request: web.Request) -> web.StreamResponse:
        if fault == "500":
            return _error(500, 11, "Internal error: Something went wrong, contact TMDb.")
        if fault == "503":
            return _error(503, 9, "Service offline: This service is temporarily offline, try again later.")
        if fault == "html502":
            return web.Response(status=502, text=_HTML_502, content_type="text/html")
        if fault == "reset":
            # Headers and half a body, then the connection drops: the client cannot miss it.
            response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            response.content_length = 4096
            await response.prepare(request)
            await response.write(b'{"page": 1, "results": [{"id": 1, "ti')
            if request.transport is not None:
                request.transport.abort()
            return response
        if fault == "slow":
            await asyncio.sleep(self.config.slow_seconds)
            return _error(504, 24, "Your request to the backend server timed out. Try again.")
        if fault == "truncated":
            body = json.dumps({"page": 1, "results": [{"id": 1, "title": "cut"}], "total_pages": 1}).encode()
            return web.Response(status=200, body=body[: len(body) // 2], content_type="application/json")
        raise ValueError(f"unknown fault {fault!r}")

    async def _counted(self, request: web.Request, answer: Any) -> web.StreamResponse:
        stats = self.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            response = await self._gate(request) or await answer(request)
            stats.statuses[response.status] += 1
            return response
        finally:
            stats.in_flight -= 1

    # -- endpoints -------------------------------------------------------------------
    async def _trending(self, request: web.Request) -> web.StreamResponse:
        return await self._counted(request, self._trending_answer)

    async def _genres(self, request: web.Request) -> web.StreamResponse:
        return await self._counted(request, self._genres_answer)

    async def _configuration(self, request: web.Request) -> web.StreamResponse:
        return await self._counted(request, self._configuration_answer)

    async def _trending_answer(self, request: web.Request) -> web.StreamResponse:
        media_type = request.match_info["media_type"]
        if media_type not in ("all", "movie", "tv", "person") or request.match_info["time_window"] not in (
            "day",
            "week",
        ):
            return _error(404, 34, "The resource you requested could not be found.")
        try:
            page = int(request.query.get("page", "1"))
        except ValueError:
            page = 0
        if not 1 <= page <= 500:
            return _error(400, 22, "Invalid page: Pages start at 1 and max at 500. They are expected to be an integer.")
        self.stats.trending_requests += 1
        self.stats.pages[page] += 1
        failing = self.config.list_errors.get(f"{media_type}/{request.match_info['time_window']}")
        if failing is not None:
            code, message = _LIST_ERRORS.get(failing, (11, "Internal error: Something went wrong, contact TMDb."))
            return _error(failing, code, message)
        total_pages = min(self.config.total_pages, 500)
        results = []
        if page <= total_pages:
            first = (page - 1) * PAGE_SIZE
            results = [_item(self._id_at(rank), media_type) for rank in range(first, first + PAGE_SIZE)]
        # The list moves between fetches: new titles enter at the top and push the rest down.
        self._inserted += self.config.churn
        document = {
            "page": page if self.config.body_page is None else self.config.body_page,
            "results": results,
            "total_pages": total_pages,
            "total_results": total_pages * PAGE_SIZE,
        }
        # Pretty-printed with \u escapes, as some CDNs and proxies serve it: the raw zone must keep these bytes.
        body = json.dumps(document, indent=2 if self.config.pretty else None).encode("utf-8")
        self.stats.bodies[page] = body
        return web.Response(body=body, content_type="application/json")

    async def _genres_answer(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        if kind not in ("movie", "tv"):
            return _error(404, 34, "The resource you requested could not be found.")
        return _json({"genres": MOVIE_GENRES if kind == "movie" else TV_GENRES})

    async def _configuration_answer(self, request: web.Request) -> web.StreamResponse:
        return _json(CONFIGURATION)

    async def _set_config(self, request: web.Request) -> web.StreamResponse:
        self.reconfigure(StandinConfig.from_mapping(await request.json()))
        return _json({"ok": True})

    async def _get_stats(self, request: web.Request) -> web.StreamResponse:
        return _json(self.stats.to_dict())

    def _id_at(self, rank: int) -> int:
        """The id at 0-based ``rank`` right now: inserted titles first, then the original list."""
        if rank < self._inserted:
            return 900_000 + (self._inserted - rank)
        return 1_000 + (rank - self._inserted)


def _item(tmdb_id: int, feed: str) -> dict[str, Any]:
    """A deterministic trending result for ``tmdb_id`` in the shape TMDB uses for its media type."""
    media_type = {9: "person", 6: "tv", 7: "tv", 8: "tv"}.get(tmdb_id % 10, "movie") if feed == "all" else feed
    if media_type == "person":
        return _person(tmdb_id)
    title = f'Amélie, "Le Fabuleux" {tmdb_id}' if tmdb_id % 11 == 0 else f"Title {tmdb_id}"
    common = {
        "adult": False,
        "backdrop_path": f"/b{tmdb_id}.jpg",
        "id": tmdb_id,
        "original_language": "en" if tmdb_id % 4 else "fr",
        "overview": "" if tmdb_id % 5 == 0 else f"Overview of {tmdb_id}.",
        "poster_path": None if tmdb_id % 7 == 0 else f"/p{tmdb_id}.jpg",
        "media_type": media_type,
        "genre_ids": [[28, 12], [35], [18, 80, 16], []][tmdb_id % 4],
        "popularity": round(10_000 / (1 + tmdb_id % 997), 3),
        "vote_average": round((tmdb_id % 100) / 10, 1),
        "vote_count": tmdb_id % 5000,
    }
    date = "" if tmdb_id % 13 == 0 else f"20{10 + tmdb_id % 16}-{1 + tmdb_id % 12:02d}-{1 + tmdb_id % 28:02d}"
    if media_type == "tv":
        return {**common, "name": title, "original_name": title, "first_air_date": date, "origin_country": ["US"]}
    return {**common, "title": title, "original_title": title, "release_date": date, "video": False}


def _person(tmdb_id: int) -> dict[str, Any]:
    """A person result as TMDB sends one, varying as real ones do (TMDB.md)."""
    person_id = tmdb_id + 5_000_000 if tmdb_id % 3 == 0 else tmdb_id  # ids above 5,000,000 occur
    name = _NAMES[tmdb_id % len(_NAMES)].format(id=tmdb_id)
    person: dict[str, Any] = {
        "adult": False,
        "gender": tmdb_id % 4,
        "id": person_id,
        "known_for_department": _DEPARTMENTS[tmdb_id % len(_DEPARTMENTS)],
        "name": name,
        "original_name": name,
        "media_type": "person",
        "popularity": [0, 0.6, round(500 / (1 + tmdb_id % 97), 3)][tmdb_id % 3],
        "profile_path": None if tmdb_id % 6 == 0 else f"/pr{tmdb_id}.jpg",
        "known_for": [] if tmdb_id % 7 == 0 else [_item(tmdb_id + 17, "movie"), _item(tmdb_id + 31, "tv")],
    }
    if tmdb_id % 10 == 4:
        del person["known_for_department"]  # seen missing altogether, not only null
    return person


def _json(document: Any, status: int = 200) -> web.Response:
    return web.json_response(document, status=status)


def _error(status: int, code: int, message: str) -> web.Response:
    return _json({"success": False, "status_code": code, "status_message": message}, status=status)


async def _serve(port: int, config: StandinConfig) -> None:
    standin = TmdbStandin(config, control=True)
    base_url = await standin.start(port=port)
    print(f"PORT {base_url.rsplit(':', 1)[1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await standin.stop()


def main(argv: list[str] | None = None) -> int:
    """Serve the stand-in until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--config", default="{}", help="StandinConfig as JSON")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, StandinConfig.from_mapping(json.loads(args.config))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
