"""Shared fixtures: a run context, the stage fakes' helpers, and the CLI called in-process."""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Iterator

import pytest

from pipeline import redact
from pipeline.stage import RunContext
from tests.support.cli import ENV_PREFIXES, ROOT, CliResult, CliRunner

# This file and these plugins import no pandas, aiohttp, aioboto3 or moto at the top: pytest-xdist's controller
# loads them too, before it starts the workers, and has no use for those (about 0.45 s of every run's start).
pytest_plugins = ["tests.support.fixtures_s3", "tests.support.fixtures_tmdb"]


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection imported (pandas, botocore's models, moto, hypothesis: ~150,000 objects) lives as long
    as the session: move it to the permanent generation, so that the collector's full passes during the tests
    (a few dozen, ~150 ms each before) no longer walk it. Forked runs inherit it without touching it.

    Then the youngest generation is collected every 10,000 new objects rather than every 700: fewer objects that
    live through a test are promoted, so the older generations fill and are walked less often. A worker spent
    3-7 s of the run in the collector, and now 2-4 s. A test that needs a finalizer to have run
    still calls ``gc.collect()``, and pytest collects once more at the end to find unraisable exceptions."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After pytest's own last collection (it looks for unraisable exceptions), freeze what the session left: the
    interpreter's final collection at exit then skips it. An xdist worker ended about half a second sooner, and
    the run waits for its last worker to end."""
    gc.freeze()


@pytest.fixture(autouse=True)
def _own_cache_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test, and every process it starts, gets an empty cache folder of its own: TMDB's lookups
    (``stages/extractors/tmdb/lookup_cache.py``) are cached there between runs, never in the user's own."""
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path_factory.mktemp("pipeline-cache")))


@pytest.fixture(autouse=True)
def _logging_and_secrets_put_back(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets back the logging set-up and registered secrets it found (``cli.main`` changes both)."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_levels = {name: logging.getLogger(name).level for name in ("pipeline", "stages")}
    monkeypatch.setattr(redact, "_secrets", set(redact._secrets))
    yield
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty secret registry of the test's own: what it registers leaks into no other test's messages."""
    monkeypatch.setattr(redact, "_secrets", set())


@pytest.fixture
def context() -> RunContext:
    """A run context for a fixed trend date."""
    from tests.support.fakes import NOW, TREND_DATE

    return RunContext(
        trend_date=TREND_DATE,
        run_id="testrun00001",
        started_at=NOW,
    )


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """``run_cli("check", "--config", ..., env={...})`` runs ``pipeline.cli.main`` in this process.

    Far cheaper than a subprocess (no interpreter, no pandas import). The environment holds no
    ``TMDB_``/``AWS_``/``S3_`` variable but ``env``'s, the working folder is the repository, and the
    logging set-up and registered secrets the CLI changes are put back (for every test). Call it from a sync test, or
    through ``asyncio.to_thread`` while a server runs on the test's own loop.
    """
    from pipeline import cli

    monkeypatch.chdir(ROOT)

    def run(*args: str, env: dict[str, str] | None = None) -> CliResult:
        for name in list(os.environ):
            if name.startswith(ENV_PREFIXES):
                monkeypatch.delenv(name)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    yield run
