"""TMDB's lookups are cached between runs (``stages/extractors/tmdb/lookup_cache.py``).

Against the stand-in: a second run asks TMDB for no lookup and cleans its pages the same. On the cache file
itself, with an injected clock: its age bounds, and a file read back as untrusted input. Each test has a cache
folder of its own (``PIPELINE_CACHE_DIR``, set by ``tests/conftest.py``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.stage import RunContext
from stages.extractors.tmdb.extractor import _is_configuration, _is_genre_list
from stages.extractors.tmdb.lookup_cache import MAX_FILE_BYTES, LookupCache, default_folder
from tests.stages.extractors.test_tmdb_standin import TOKEN, standin_extractor
from tests.support.fixtures_tmdb import StandinFactory
from tests.support.tmdb import collect

LOOKUP_PATHS = ("/3/configuration", "/3/genre/movie/list", "/3/genre/tv/list")
CONFIGURATION = {"images": {"secure_base_url": "https://image.tmdb.org/t/p/", "poster_sizes": ["w500"]}}
GENRES = {"genres": [{"id": 28, "name": "Action"}]}
HOUR = 3600.0


class Clock:
    def __init__(self, now: float = 1_796_300_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def lookups_asked(standin: Any) -> dict[str, int]:
    return {path: standin.stats.paths[path] for path in LOOKUP_PATHS if standin.stats.paths[path]}


async def test_a_second_run_asks_for_no_lookup_and_cleans_the_same(
    live_context: RunContext, tmdb_standin: StandinFactory
) -> None:
    standin = await tmdb_standin(token=TOKEN, total_pages=3)
    feeds = ["movie/day", "tv/day"]
    first = await collect(standin_extractor(live_context, standin, pages=2, feeds=feeds))
    assert lookups_asked(standin) == {path: 1 for path in LOOKUP_PATHS}
    files = list(default_folder().iterdir())
    assert len(files) == 1 and TOKEN not in files[0].read_text()  # one file, and never the secret
    standin.stats.paths.clear()
    second = await collect(standin_extractor(live_context, standin, pages=2, feeds=feeds))
    assert lookups_asked(standin) == {}
    assert standin.stats.paths["/3/trending/movie/day"] == 2 and standin.stats.paths["/3/trending/tv/day"] == 2
    assert [b.lookups for b in second] == [b.lookups for b in first]
    assert second[0].lookups.genres and second[0].lookups.poster_base_url


async def test_what_the_cache_lacks_is_fetched_and_added(
    live_context: RunContext, tmdb_standin: StandinFactory
) -> None:
    standin = await tmdb_standin(token=TOKEN, total_pages=3)
    await collect(standin_extractor(live_context, standin, pages=1))  # movies: configuration and movie genres
    standin.stats.paths.clear()
    await collect(standin_extractor(live_context, standin, pages=1, feeds=["movie/day", "tv/day"]))
    assert lookups_asked(standin) == {"/3/genre/tv/list": 1}
    standin.stats.paths.clear()
    await collect(standin_extractor(live_context, standin, pages=1, media_type="tv"))
    assert lookups_asked(standin) == {}


async def test_another_server_or_language_has_lookups_of_its_own(
    live_context: RunContext, tmdb_standin: StandinFactory
) -> None:
    one, other = await tmdb_standin(token=TOKEN, total_pages=3), await tmdb_standin(token=TOKEN, total_pages=3)
    await collect(standin_extractor(live_context, one, pages=1))
    await collect(standin_extractor(live_context, other, pages=1))
    await collect(standin_extractor(live_context, one, pages=1, language="de-DE"))
    assert lookups_asked(one) == {"/3/configuration": 2, "/3/genre/movie/list": 2}
    assert lookups_asked(other) == {"/3/configuration": 1, "/3/genre/movie/list": 1}
    assert len(list(default_folder().iterdir())) == 3


async def test_zero_hours_fetches_every_run_and_writes_nothing(
    live_context: RunContext, tmdb_standin: StandinFactory
) -> None:
    standin = await tmdb_standin(token=TOKEN, total_pages=3)
    for _ in range(2):
        await collect(standin_extractor(live_context, standin, pages=1, lookup_cache_hours=0))
    assert lookups_asked(standin) == {"/3/configuration": 2, "/3/genre/movie/list": 2}
    assert list(default_folder().iterdir()) == []


async def test_an_unwritable_cache_folder_costs_a_warning_not_the_run(
    live_context: RunContext,
    tmdb_standin: StandinFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(blocker / "cache"))
    standin = await tmdb_standin(token=TOKEN, total_pages=3)
    with caplog.at_level(logging.WARNING):
        batches = await collect(standin_extractor(live_context, standin, pages=2))
    assert [b.page for b in batches] == [1, 2] and batches[0].lookups.genres
    assert [r.getMessage() for r in caplog.records if "not cached" in r.getMessage()] != []


def test_the_folder_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "own"))
    assert default_folder() == tmp_path / "own"
    monkeypatch.delenv("PIPELINE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_folder() == tmp_path / "xdg" / "tmdb-trending-pipeline"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG rule: ignored
    assert default_folder() == Path.home() / ".cache" / "tmdb-trending-pipeline"


# -- the file ---------------------------------------------------------------------------------------------


def cache(folder: Path, clock: Clock, *, base_url: str = "https://api.themoviedb.org", max_age: float = HOUR) -> Any:
    return LookupCache(folder, base_url, None, max_age, clock=clock)


def test_a_document_is_fresh_until_it_is_max_age_old(tmp_path: Path) -> None:
    clock = Clock()
    cache(tmp_path, clock).save({"configuration": CONFIGURATION})
    reader = cache(tmp_path, clock)
    reader.load()
    assert reader.fresh("configuration", _is_configuration) == CONFIGURATION
    clock.now += HOUR - 0.001
    assert reader.fresh("configuration", _is_configuration) == CONFIGURATION
    clock.now += 0.001
    assert reader.fresh("configuration", _is_configuration) is None  # exactly max_age: stale
    clock.now -= HOUR + 0.001
    assert reader.fresh("configuration", _is_configuration) is None  # saved "in the future": a wrong clock
    assert reader.fresh("genre/movie", _is_genre_list) is None  # never saved


def test_save_keeps_the_other_documents_and_replaces_the_file_whole(tmp_path: Path) -> None:
    clock = Clock()
    writer = cache(tmp_path, clock)
    writer.save({"configuration": CONFIGURATION})
    clock.now += 10
    writer.save({"genre/movie": GENRES})
    assert [p.name for p in tmp_path.iterdir()] == [writer.path.name]  # no temporary file left
    content = json.loads(writer.path.read_text())
    assert content["documents"]["configuration"]["saved_at"] == clock.now - 10
    assert content["documents"]["genre/movie"] == {"saved_at": clock.now, "document": GENRES}


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"\xff\xfe", id="not-text"),
        pytest.param(json.dumps([1, 2]).encode(), id="a-list"),
        pytest.param(json.dumps({"version": 2, "documents": {}}).encode(), id="another-version"),
    ],
)
def test_a_file_that_is_not_ours_is_ignored_and_replaced(tmp_path: Path, content: bytes) -> None:
    clock = Clock()
    reader = cache(tmp_path, clock)
    reader.save({"configuration": CONFIGURATION})  # what it held before the file changed under it
    reader.path.write_bytes(content)
    reader.load()
    assert reader.fresh("configuration", _is_configuration) is None
    reader.save({"configuration": CONFIGURATION})
    again = cache(tmp_path, clock)
    again.load()
    assert again.fresh("configuration", _is_configuration) == CONFIGURATION


@pytest.mark.parametrize(("size", "read"), [(MAX_FILE_BYTES, True), (MAX_FILE_BYTES + 1, False)])
def test_a_file_over_the_size_limit_is_not_read(tmp_path: Path, size: int, read: bool) -> None:
    clock = Clock()
    writer = cache(tmp_path, clock)
    writer.save({"configuration": CONFIGURATION})
    text = writer.path.read_text()
    writer.path.write_text(text + " " * (size - len(text)))  # still JSON, and so is any start of it
    assert writer.path.stat().st_size == size
    reader = cache(tmp_path, clock)
    reader.load()
    assert (reader.fresh("configuration", _is_configuration) is not None) is read


TMDB = "https://api.themoviedb.org"


@pytest.mark.parametrize(
    ("mine", "theirs"),
    [
        ((TMDB, None), ("http://127.0.0.1:9", None)),
        ((TMDB, None), (TMDB, "de-DE")),
        ((TMDB, "de-DE"), (TMDB, None)),
    ],
    ids=["another-server", "another-language", "no-language"],
)
def test_a_file_of_another_server_or_language_is_not_used_even_under_its_name(
    tmp_path: Path, mine: tuple[str, str | None], theirs: tuple[str, str | None]
) -> None:
    clock = Clock()
    reader, other = LookupCache(tmp_path, *mine, HOUR, clock=clock), LookupCache(tmp_path, *theirs, HOUR, clock=clock)
    other.save({"configuration": CONFIGURATION})
    os.replace(other.path, reader.path)
    reader.load()
    assert reader.fresh("configuration", _is_configuration) is None


def test_a_language_s_lookups_come_back(tmp_path: Path) -> None:
    clock = Clock()
    LookupCache(tmp_path / "new" / "nested", "https://api.themoviedb.org", "de-DE", HOUR, clock=clock).save(
        {"genre/movie": GENRES}
    )  # folders that do not exist yet are made
    reader = LookupCache(tmp_path / "new" / "nested", "https://api.themoviedb.org", "de-DE", HOUR, clock=clock)
    reader.load()
    assert reader.fresh("genre/movie", _is_genre_list) == GENRES


def test_a_save_that_fails_leaves_the_file_as_it_was_and_no_temporary(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    writer = cache(tmp_path, clock)
    writer.save({"configuration": CONFIGURATION})
    before = writer.path.read_bytes()
    with caplog.at_level(logging.WARNING):
        writer.save({"genre/movie": {"genres": [object()]}})  # not JSON: the save fails before it writes
    assert writer.path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [writer.path.name]
    assert any("not cached" in r.getMessage() for r in caplog.records)


def test_a_save_that_fails_after_writing_its_temporary_file_removes_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = cache(tmp_path, Clock())
    writer.path.mkdir()  # the rename over it fails: the temporary file was written by then
    (writer.path / "kept").write_text("x")
    with caplog.at_level(logging.WARNING):
        writer.save({"configuration": CONFIGURATION})
    assert [p.name for p in tmp_path.iterdir()] == [writer.path.name]  # no temporary file left beside it
    assert [p.name for p in writer.path.iterdir()] == ["kept"]
    assert any("not cached" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("saved_at", ["10" * 200, "true", "NaN", "Infinity", "-1", "0", '"1796300000"'])
def test_a_saved_at_that_is_no_time_of_a_save_is_stale(tmp_path: Path, saved_at: str) -> None:
    clock = Clock()
    reader = cache(tmp_path, clock)
    document = json.dumps(CONFIGURATION)
    reader.path.write_text(
        '{"version": 1, "base_url": "https://api.themoviedb.org", "language": null, '
        f'"documents": {{"configuration": {{"saved_at": {saved_at}, "document": {document}}}}}}}'
    )
    reader.load()
    assert reader.fresh("configuration", _is_configuration) is None


def test_a_document_of_the_wrong_shape_is_fetched_again(tmp_path: Path) -> None:
    clock = Clock()
    writer = cache(tmp_path, clock)
    writer.save({"configuration": {"images": {"secure_base_url": 7}}, "genre/movie": {"genres": "Action"}})
    reader = cache(tmp_path, clock)
    reader.load()
    assert reader.fresh("configuration", _is_configuration) is None
    assert reader.fresh("genre/movie", _is_genre_list) is None


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300)  # beyond any float
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    documents=st.dictionaries(
        st.sampled_from(["configuration", "genre/movie", "genre/tv"]) | st.text(max_size=8),
        st.fixed_dictionaries({"saved_at": JSON | st.floats(allow_nan=False), "document": JSON}) | JSON,
        max_size=4,
    ),
    version=st.sampled_from([1, 1, "1", None]),
)
def test_whatever_the_file_holds_load_and_fresh_never_fail(
    tmp_path: Path, documents: dict[str, Any], version: Any
) -> None:
    clock = Clock()
    reader = cache(tmp_path, clock)
    content = {"version": version, "base_url": "https://api.themoviedb.org", "language": None, "documents": documents}
    reader.path.write_text(json.dumps(content))
    reader.load()
    for name, valid in (("configuration", _is_configuration), ("genre/movie", _is_genre_list)):
        found = reader.fresh(name, valid)
        assert found is None or valid(found)
