"""One behaviour for every lake loader: write, abort, read back, re-run.

Each loader kind contributes a ``LakeUnderTest``: how to build the loader, how to
list what is stored, and how to find leftovers of unfinished writes (temp files for
``local``, open multipart uploads for ``s3``). A future loader adds one branch to
``lake`` and must pass the same tests.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from pipeline.datalake import LakeLoader, Layout, schema
from pipeline.errors import RegressionRefused
from pipeline.stage import Feed, Lookups, RunContext
from stages.loaders.local import LocalLoader, LocalOptions
from stages.loaders.s3 import S3Loader, S3Options
from stages.transformers.standardize import StandardizeOptions, StandardizeTransformer
from tests.support.fakes import TREND_DATE, YESTERDAY, batch, commit_info
from tests.support.fixtures_s3 import object_keys, open_uploads
from tests.support.lake import context_for

FEED = Feed()
PREFIX = "team/tmdb"
LAYOUT = Layout(PREFIX)
KEYS = LAYOUT.keys(TREND_DATE, FEED, "contract0001")


def stored(day: dt.date = TREND_DATE, *, last: str = "contract0001", raws: tuple[str, ...] = ()) -> list[str]:
    """What a committed day stores: cleaned, manifest, the last run's version, and each run's raw pages."""
    runs = raws or (last,)
    return sorted(
        [
            LAYOUT.key("cleaned", day, FEED),
            LAYOUT.key("manifest", day, FEED),
            LAYOUT.run_key("version", day, FEED, last),
            *(LAYOUT.run_key("raw", day, FEED, run) for run in runs),
        ]
    )


@dataclasses.dataclass
class LakeUnderTest:
    """One loader kind, and ways to look at its storage without going through it."""

    kind: str
    make: Callable[[RunContext], LakeLoader[Any]]
    stored_keys: Callable[[], Awaitable[list[str]]]
    leftovers: Callable[[], Awaitable[list[str]]]


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> LakeUnderTest:
    """A factory for each loader kind, all writing under the same prefix."""
    if request.param == "local":
        root = tmp_path / "lake"

        async def local_keys() -> list[str]:
            files = root.rglob("*") if root.exists() else iter(())
            return sorted(p.relative_to(root).as_posix() for p in files if p.is_file() and not p.name.startswith("."))

        async def temp_files() -> list[str]:
            return sorted(p.name for p in root.rglob(".*.tmp")) if root.exists() else []

        return LakeUnderTest(
            "local",
            lambda context: LocalLoader(LocalOptions(root=root, prefix=PREFIX), context, name="local"),
            local_keys,
            temp_files,
        )
    client = request.getfixturevalue("s3_client")
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("moto_endpoint")

    async def s3_keys() -> list[str]:
        return await object_keys(client, bucket)

    async def s3_uploads() -> list[str]:
        return await open_uploads(client, bucket)

    return LakeUnderTest(
        "s3",
        lambda context: S3Loader(S3Options(bucket=bucket, prefix=PREFIX, endpoint_url=endpoint), context, name="s3"),
        s3_keys,
        s3_uploads,
    )


async def frames(context: RunContext, pages: int = 3, first_id: int = 1) -> list[pd.DataFrame]:
    """Cleaned chunks of ``pages`` small TMDB pages, made by the real transformer."""
    transformer = StandardizeTransformer(StandardizeOptions(), context, name="standardize")
    ids = [list(range(first_id + (n - 1) * 20, first_id + n * 20)) for n in range(1, pages + 1)]
    return [await transformer.transform(batch(n, page_ids)) for n, page_ids in enumerate(ids, start=1)]


async def commit_day(lake: LakeUnderTest, context: RunContext, first_id: int = 1) -> pd.DataFrame:
    """Write and commit three pages; returns the rows written."""
    chunks = await frames(context, first_id=first_id)
    async with lake.make(context) as loader:
        loader_day = await loader.begin(FEED)
        for number, chunk in enumerate(chunks, start=1):
            await loader_day.write_raw(batch(number, list(chunk["id"])))
            await loader_day.write(chunk)
        await loader_day.commit(commit_info(loader, counters={"pages": len(chunks)}))
    return schema.conform(pd.concat(chunks, ignore_index=True))


async def test_commit_writes_three_keys_and_reads_back_the_rows(lake: LakeUnderTest) -> None:
    context = context_for(TREND_DATE, "contract0001")
    written = await commit_day(lake, context)

    assert await lake.stored_keys() == stored()
    assert await lake.leftovers() == []
    async with lake.make(context) as loader:
        read = await loader.read_day(TREND_DATE, FEED)
        manifest = await loader.read_manifest(TREND_DATE, FEED)
        raw = await loader.lake.get_bytes(KEYS["raw"])
    assert read is not None
    pd.testing.assert_frame_equal(read, written)
    assert manifest is not None and manifest["rows"] == len(written) == 60
    assert manifest["objects"]["cleaned"]["key"] == KEYS["cleaned"]
    assert raw is not None
    assert [json.loads(line)["page"] for line in gzip.decompress(raw).splitlines()] == [1, 2, 3]


async def test_a_missing_day_reads_as_none(lake: LakeUnderTest) -> None:
    await commit_day(lake, context_for(TREND_DATE, "contract0001"))
    async with lake.make(context_for(TREND_DATE, "contract0001")) as loader:
        assert await loader.read_day(YESTERDAY, FEED) is None
        assert await loader.read_manifest(YESTERDAY, FEED) is None
        assert await loader.read_day(TREND_DATE, Feed("tv", "week")) is None
        assert await loader.lake.get_bytes(LAYOUT.key("cleaned", YESTERDAY, FEED)) is None


async def test_an_empty_day_is_refused_unless_forced_then_commits_a_header_only_csv(lake: LakeUnderTest) -> None:
    async with lake.make(context_for(TREND_DATE, "refused00001")) as loader:
        loader_day = await loader.begin(FEED)
        with pytest.raises(RegressionRefused, match=r"refusing to commit 0 rows .* --force"):
            await loader_day.commit(commit_info(loader))
        await loader_day.abort()
    assert await lake.stored_keys() == []
    context = dataclasses.replace(context_for(TREND_DATE, "contract0001"), force=True)
    async with lake.make(context) as loader:
        loader_day = await loader.begin(FEED)
        await loader_day.commit(commit_info(loader))
    async with lake.make(context) as loader:
        read = await loader.read_day(TREND_DATE, FEED)
        cleaned = await loader.lake.get_bytes(KEYS["cleaned"])
    assert read is not None and read.empty
    assert list(read.columns) == list(schema.COLUMN_NAMES)
    assert cleaned == (",".join(schema.COLUMN_NAMES) + "\n").encode()


async def test_abort_leaves_nothing_new_and_the_previous_version_intact(lake: LakeUnderTest) -> None:
    earlier = await commit_day(lake, context_for(TREND_DATE, "earlier00001"))
    keys = stored(last="earlier00001")
    async with lake.make(context_for(TREND_DATE, "contract0001")) as loader:
        before = {key: await loader.lake.get_bytes(key) for key in keys}

    context = context_for(TREND_DATE, "aborted00001")
    async with lake.make(context) as loader:
        loader_day = await loader.begin(FEED)
        for chunk in await frames(context, first_id=900):
            await loader_day.write(chunk)
        await loader_day.abort()

    assert await lake.stored_keys() == keys
    assert await lake.leftovers() == []
    async with lake.make(context) as loader:
        assert {key: await loader.lake.get_bytes(key) for key in keys} == before
        read = await loader.read_day(TREND_DATE, FEED)
    assert read is not None
    pd.testing.assert_frame_equal(read, earlier)


async def test_abort_of_a_first_write_leaves_the_day_missing(lake: LakeUnderTest) -> None:
    context = context_for(TREND_DATE, "contract0001")
    async with lake.make(context) as loader:
        loader_day = await loader.begin(FEED)
        for chunk in await frames(context):
            await loader_day.write(chunk)
        await loader_day.abort()
        assert await loader.read_day(TREND_DATE, FEED) is None
    assert await lake.stored_keys() == []
    assert await lake.leftovers() == []


async def test_three_runs_leave_one_object_per_key_with_the_last_rows(lake: LakeUnderTest) -> None:
    for run, first_id in enumerate((1, 1, 300), start=1):
        last = await commit_day(lake, context_for(TREND_DATE, f"run{run:09d}"), first_id=first_id)

    runs = tuple(f"run{run:09d}" for run in (1, 2, 3))
    assert await lake.stored_keys() == stored(last=runs[-1], raws=runs), "raw pages are kept per run"
    async with lake.make(context_for(TREND_DATE, "contract0001")) as loader:
        read = await loader.read_day(TREND_DATE, FEED)
        manifest = await loader.read_manifest(TREND_DATE, FEED)
    assert read is not None
    pd.testing.assert_frame_equal(read, last)
    assert manifest is not None and manifest["run_id"] == "run000000003"


async def test_days_are_independent(lake: LakeUnderTest) -> None:
    yesterday = await commit_day(lake, context_for(YESTERDAY, "contract0001"), first_id=1)
    today = await commit_day(lake, context_for(TREND_DATE, "contract0001"), first_id=100)

    async with lake.make(context_for(TREND_DATE, "contract0001")) as loader:
        read_yesterday = await loader.read_day(YESTERDAY, FEED)
        read_today = await loader.read_day(TREND_DATE, FEED)
    assert read_yesterday is not None and read_today is not None
    assert list(read_yesterday["id"]) == list(yesterday["id"])
    assert list(read_today["id"]) == list(today["id"])
    assert await lake.stored_keys() == sorted(stored(YESTERDAY) + stored())


async def test_lookups_line_comes_first_in_the_raw_zone(lake: LakeUnderTest) -> None:
    context = dataclasses.replace(context_for(TREND_DATE, "contract0001"), force=True)
    lookups = Lookups(genres={28: "Action"}, poster_base_url="https://image.example/w500")
    first = batch(1, [1, 2])
    async with lake.make(context) as loader:
        loader_day = await loader.begin(FEED)
        await loader_day.write_raw(dataclasses.replace(first, lookups=lookups))
        await loader_day.commit(commit_info(loader))
        raw = await loader.lake.get_bytes(KEYS["raw"])
    assert raw is not None
    lines = [json.loads(line) for line in gzip.decompress(raw).splitlines()]
    assert lines[0] == {
        "lookups": {"genres": [{"id": 28, "name": "Action"}], "poster_base_url": "https://image.example/w500"}
    }
    assert lines[1]["page"] == 1


async def test_outputs_and_description_name_the_lake(lake: LakeUnderTest) -> None:
    context = dataclasses.replace(context_for(TREND_DATE, "contract0001"), force=True)
    async with lake.make(context) as loader:
        planned = loader.planned_outputs(FEED)
        loader_day = await loader.begin(FEED)
        outputs = (await loader_day.commit(commit_info(loader))).outputs
        description = loader.describe()
    assert outputs == planned
    assert set(outputs) == {"cleaned", "raw", "manifest"}
    for zone, location in outputs.items():
        assert location.endswith(KEYS[zone])
    assert description.endswith(PREFIX)
