"""A third-party reporter: writes the run's row count and trend date to a text file."""

from __future__ import annotations

from pathlib import Path

from pipeline import Reporter, RunResult
from pipeline.options import StageOptions
from pipeline.stage import RunLake


class RowCountOptions(StageOptions):
    """Where to write."""

    path: Path


class RowCountReporter(Reporter[RowCountOptions]):
    """Writes ``<trend_date> <rows>`` to ``path``."""

    Options = RowCountOptions

    async def report(self, result: RunResult, lake: RunLake) -> dict[str, str]:
        """Write one line and say where."""
        self.options.path.write_text(f"{result.trend_date} {result.rows}\n", encoding="utf-8")
        return {"report:row-count": str(self.options.path)}
