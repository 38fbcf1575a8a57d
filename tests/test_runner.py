"""The runner: order, streaming, abort on failure, closing, and error attribution."""

from __future__ import annotations

import pytest

from pipeline.errors import ExtractError, LoadError, TransformError
from pipeline.runner import Stages, run_stages
from pipeline.stage import RunContext
from tests.fakes import CollectingLoader, FrameTransformer, ListExtractor, RecordingReporter, batch


def make(context: RunContext, log: list[str], **fail: int) -> Stages:
    batches = [batch(1, [1, 2]), batch(2, [3, 4]), batch(3, [5])]
    return Stages(
        extractor=ListExtractor(context, batches, fail_after=fail.get("extract"), log=log),
        transformer=FrameTransformer(context, fail_on=fail.get("transform"), log=log),
        loader=CollectingLoader(context, fail_on_chunk=fail.get("load"), log=log),
        reporters=(RecordingReporter(context, log=log),),
    )


async def test_success_runs_stages_in_order_and_reports_what_was_committed(context: RunContext) -> None:
    log: list[str] = []
    stages = make(context, log)
    result = await run_stages(stages, context)
    assert result.rows == 5
    assert result.batches == 3
    assert result.outputs == {"cleaned": "memory://today", "report:record": "memory://report"}
    assert result.counters == {"pages": 3}
    assert set(result.timings) >= {"extract", "transform", "load", "report"}
    assert log.index("loader.begin") < log.index("extractor.yield 1")
    assert log.index("loader.commit") < log.index("reporter.report")
    reporter = stages.reporters[0]
    assert isinstance(reporter, RecordingReporter)
    assert [(s.rows, s.today_rows) for s in reporter.seen] == [(5, 5)]
    # closed in reverse order of opening, like nested ``async with`` blocks
    assert log[-4:] == ["reporter.close", "loader.close", "transformer.close", "extractor.close"]


async def test_chunks_stream_to_the_loader_before_extraction_ends(context: RunContext) -> None:
    log: list[str] = []
    await run_stages(make(context, log), context)
    assert log.index("loader.write 1") < log.index("extractor.yield 3")
    assert log.index("loader.write 2") < log.index("extractor.yield 3")
    assert log.index("extractor.yield 3") < log.index("extractor.done")


@pytest.mark.parametrize(
    ("failure", "error", "stage_name"),
    [
        ({"extract": 2}, ExtractError, "list"),
        ({"transform": 2}, TransformError, "frame"),
        ({"load": 2}, LoadError, "collect"),
    ],
)
async def test_a_failing_stage_aborts_the_loader_and_closes_everything(
    context: RunContext, failure: dict[str, int], error: type[Exception], stage_name: str
) -> None:
    log: list[str] = []
    stages = make(context, log, **failure)
    with pytest.raises(error) as caught:
        await run_stages(stages, context)
    assert getattr(caught.value, "stage", None) == stage_name
    assert stage_name in str(caught.value)
    loader = stages.loader
    assert isinstance(loader, CollectingLoader)
    assert loader.aborted
    assert loader.visible == {}
    assert "loader.commit" not in log
    assert "reporter.report" not in log
    assert {"extractor.close", "transformer.close", "loader.close", "reporter.close"} <= set(log)


async def test_dry_run_extracts_and_transforms_but_never_touches_the_loader(context: RunContext) -> None:
    log: list[str] = []
    dry = RunContext(context.trend_date, context.run_id, context.started_at, dry_run=True)
    stages = make(dry, log)
    result = await run_stages(stages, dry)
    assert result.rows == 5
    assert result.dry_run
    assert not [entry for entry in log if entry.startswith(("loader.begin", "loader.write", "loader.commit"))]
    assert "reporter.report" not in log


async def test_a_surprise_carrying_a_secret_is_redacted_and_not_chained(context: RunContext) -> None:
    from pipeline.redact import register_secret

    secret = "s3cr3t-token-value-0123456789"
    register_secret(secret)

    class LeakyExtractor(ListExtractor):
        async def batches(self):  # type: ignore[no-untyped-def, override]
            raise RuntimeError(f"GET https://api.example/3/x?api_key={secret} failed")
            yield  # pragma: no cover

    log: list[str] = []
    stages = make(context, log)
    stages = Stages(LeakyExtractor(context, []), stages.transformer, stages.loader)
    with pytest.raises(ExtractError) as caught:
        await run_stages(stages, context)
    assert secret not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
