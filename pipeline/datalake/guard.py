"""The regression guard: a day that would replace a good one with nothing, or with far fewer rows, is refused."""

from __future__ import annotations

import dataclasses

from pipeline.datalake.manifest import Manifest
from pipeline.errors import RegressionRefused
from pipeline.stage import RunContext


@dataclasses.dataclass(frozen=True)
class Guard:
    """The regression guard: refuse an empty day, or one far smaller than the day it would replace."""

    min_row_ratio: float = 0.5
    allow_regression: bool = False

    def check(self, context: RunContext, previous: Manifest | None, rows: int, stage: str | None) -> None:
        """``RegressionRefused`` when ``rows`` would replace ``previous`` badly (``--force`` lets it through)."""
        if context.force or self.allow_regression:
            return
        day, before = context.trend_date, (previous.rows if previous else 0)
        if rows == 0:
            raise RegressionRefused(
                f"refusing to commit 0 rows for {day}: TMDB sent no usable rows "
                "(an incident, or every record was dropped); if an empty day is right, run again with --force",
                stage=stage,
            )
        if previous is not None and before > 0 and rows < before * self.min_row_ratio:
            raise RegressionRefused(
                f"refusing to replace {day} ({before} rows, run {previous.run_id}) with {rows} rows "
                f"(under {self.min_row_ratio:.0%} of them); if the smaller day is right, run again with --force",
                stage=stage,
            )
