"""The local lake: atomic days, idempotent re-runs, nothing half-written on failure."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from pipeline.errors import ConfigError, ExtractError, LoadError
from pipeline.options import build_options
from pipeline.runner import Stages, run_stages
from pipeline.stage import Feed, RunContext
from stages.loaders.local import LocalLoader, LocalOptions
from stages.transformers.standardize import StandardizeOptions, StandardizeTransformer
from tests.support.fakes import ListExtractor, batch

DAY = dt.date(2026, 11, 25)
CSV = Path("cleaned_data/2026/11/2026-11-25_movies.csv")


def stages_for(context: RunContext, root: Path, *, fail_after: int | None = None, pages: int = 3) -> Stages:
    batches = [batch(n, list(range(n * 100, n * 100 + 20))) for n in range(1, pages + 1)]
    return Stages(
        extractor=ListExtractor(context, batches, fail_after=fail_after),
        transformer=StandardizeTransformer(StandardizeOptions(), context),
        loader=LocalLoader(LocalOptions(root=root), context, name="local"),
    )


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def test_a_run_writes_cleaned_raw_and_manifest(context: RunContext, tmp_path: Path) -> None:
    result = await run_stages(stages_for(context, tmp_path), context)
    assert files(tmp_path) == [
        "_manifests/2026/11/2026-11-25_movies.json",
        "_versions/2026/11/2026-11-25_movies.run-testrun00001.csv",
        "cleaned_data/2026/11/2026-11-25_movies.csv",
        "raw_data/2026/11/2026-11-25_movies.run-testrun00001.jsonl.gz",
    ]
    assert result.outputs["cleaned"] == str(tmp_path / CSV)
    manifest = json.loads((tmp_path / "_manifests/2026/11/2026-11-25_movies.json").read_text())
    for zone in ("cleaned", "raw"):
        stored = (tmp_path / manifest["objects"][zone]["key"]).read_bytes()
        assert manifest["objects"][zone]["sha256"] == hashlib.sha256(stored).hexdigest()
        assert manifest["objects"][zone]["bytes"] == len(stored)
    assert manifest["rows"] == 60 and manifest["run_id"] == context.run_id and manifest["schema_version"] == 1
    assert (tmp_path / CSV).read_bytes() == (tmp_path / manifest["objects"]["cleaned"]["version_key"]).read_bytes()
    raw_path = tmp_path / "raw_data/2026/11/2026-11-25_movies.run-testrun00001.jsonl.gz"
    raw_lines = gzip.decompress(raw_path.read_bytes()).splitlines()
    assert [json.loads(line)["page"] for line in raw_lines] == [1, 2, 3]


async def test_failure_after_the_first_chunk_keeps_the_previous_file_and_leaves_no_temp_files(
    context: RunContext, tmp_path: Path
) -> None:
    await run_stages(stages_for(context, tmp_path, pages=2), context)
    before = {name: (tmp_path / name).read_bytes() for name in files(tmp_path)}
    again = dataclasses.replace(context, run_id="failing00001")
    with pytest.raises(ExtractError, match="source went away"):
        await run_stages(stages_for(again, tmp_path, fail_after=1), again)
    after = {name: (tmp_path / name).read_bytes() for name in files(tmp_path)}
    assert after == before, "the previous good day must stay byte-identical, with no temp files beside it"


async def test_failure_on_the_first_run_of_a_day_leaves_nothing(context: RunContext, tmp_path: Path) -> None:
    with pytest.raises(ExtractError):
        await run_stages(stages_for(context, tmp_path, fail_after=2), context)
    assert files(tmp_path) == []


async def test_re_running_a_day_replaces_it(context: RunContext, tmp_path: Path) -> None:
    for pages in (3, 2, 2):
        again = dataclasses.replace(context, run_id=f"rerun{pages}{len(files(tmp_path))}")
        await run_stages(stages_for(again, tmp_path, pages=pages), again)
    names = files(tmp_path)
    assert len(names) == 6, "cleaned, manifest, the last run's version, and three runs' raw pages"
    assert len([n for n in names if n.startswith("raw_data/")]) == 3
    loader = LocalLoader(LocalOptions(root=tmp_path), context)
    frame = await loader.read_day(DAY, Feed())
    assert frame is not None and len(frame) == 40


async def test_read_day_of_a_missing_day_is_none(context: RunContext, tmp_path: Path) -> None:
    loader = LocalLoader(LocalOptions(root=tmp_path), context)
    assert await loader.read_day(dt.date(2020, 1, 1), Feed()) is None


async def test_old_temp_files_nobody_owns_are_cleaned_up(context: RunContext, tmp_path: Path) -> None:
    folder = tmp_path / "_versions/2026/11"
    folder.mkdir(parents=True)
    stale = folder / ".2026-11-25_movies.run-dead00001.csv.run-dead00001.abc123.tmp"
    stale.write_bytes(b"half")
    young = folder / ".2026-11-24_movies.csv.run-other0001.abc123.tmp"
    young.write_bytes(b"half")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    await run_stages(stages_for(context, tmp_path), context)
    assert not stale.exists(), "an hour past lock_timeout with no live lock: a dead run's"
    assert young.exists(), "without a lock naming its run, a young temp file may belong to a run starting up"


async def test_write_before_begin_is_a_load_error(context: RunContext, tmp_path: Path) -> None:
    loader = LocalLoader(LocalOptions(root=tmp_path), context, name="local")
    with pytest.raises(LoadError, match="before begin"):
        await loader.write_raw(batch(1, [1]))


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("/abs", "loader.options.prefix: must not start with '/'"),
        ("a//b", "loader.options.prefix: must not contain empty segments"),
        ("a/../b", "loader.options.prefix: must not contain '.' or '..' segments"),
    ],
)
def test_prefix_is_validated(prefix: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_options(LocalOptions, {"prefix": prefix}, "loader.options")


async def test_prefix_puts_the_lake_under_a_folder(context: RunContext, tmp_path: Path) -> None:
    stages = stages_for(context, tmp_path)
    loader = LocalLoader(build_options(LocalOptions, {"root": str(tmp_path), "prefix": "team/tmdb/"}, "l"), context)
    await run_stages(Stages(stages.extractor, stages.transformer, loader), context)
    assert (tmp_path / "team/tmdb" / CSV).exists()


async def test_lake_files_get_the_mode_a_plain_open_would_give(context: RunContext, tmp_path: Path) -> None:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    await run_stages(stages_for(context, tmp_path), context)
    modes = {p.stat().st_mode & 0o777 for p in tmp_path.rglob("*") if p.is_file()}
    assert modes == {0o666 & ~mask}
