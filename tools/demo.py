"""``make run``: replay the bundled synthetic series (tests/data/series/) into ./lake, one day after another.

Every day runs the real pipeline (replay -> standardize -> local lake) with config/demo.yml,
in one process so the 29 days take seconds; the reporters run on the last day only, so the
report and the page show the trend of the whole month (and the day the job "did not run"
as a gap).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERIES = ROOT / "tests" / "data" / "series"
CONFIG = ROOT / "config" / "demo.yml"


async def replay(days: list[Path]) -> None:
    """Run the pipeline once per archived day, oldest first; report after the last."""
    from pipeline.config import load_config
    from pipeline.runner import run_pipeline

    for number, path in enumerate(days, start=1):
        day = dt.date.fromisoformat(path.name.split(".", 1)[0])
        config = load_config(CONFIG, [f"extractor.options.path={path}"])
        if number < len(days):
            config = dataclasses.replace(config, reporters=())
        result = await run_pipeline(config, trend_date=day)
        print(f"{day}: {result.rows} rows", file=sys.stderr)
    for kind, where in result.outputs.items():
        if kind.startswith("report:"):
            print(f"{kind}: {where}")


def main() -> int:
    """Replay every day of the series."""
    days = sorted(SERIES.glob("*.jsonl.gz"))
    if not days:
        print(f"no archived days in {SERIES}: run tests/data/generate_sample.py", file=sys.stderr)
        return 1
    asyncio.run(replay(days))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
