"""Shared fixtures: a run context and the stage fakes' helpers."""

from __future__ import annotations

import datetime as dt

import pytest

from pipeline.stage import RunContext

pytest_plugins = ["tests.fixtures_s3", "tests.fixtures_tmdb"]

TREND_DATE = dt.date(2026, 11, 25)


@pytest.fixture
def context() -> RunContext:
    """A run context for a fixed trend date."""
    return RunContext(
        trend_date=TREND_DATE,
        run_id="testrun00001",
        started_at=dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC),
    )
