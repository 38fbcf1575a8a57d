"""``reprocess``: rebuild cleaned days from the raw zone, atomically, idempotently, raw zone untouched."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.commands.reprocess import reprocess
from pipeline.config import load_config
from pipeline.datalake import Layout
from pipeline.runner import project_version, run_pipeline
from pipeline.stage import Feed
from tests.support.fixtures_s3 import get_object, object_keys
from tests.support.sample import replay_config

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tests/data/sample"
FEED = Feed()
LAYOUT = Layout()
DAYS = (dt.date(2026, 11, 24), dt.date(2026, 11, 25))


class Store:
    """Reads a lake's objects without going through a loader."""

    def __init__(self, read: Any, keys: Any) -> None:
        self.read, self.keys = read, keys

    async def snapshot(self, prefix: str) -> dict[str, bytes]:
        return {key: await self.read(key) for key in await self.keys() if key.startswith(prefix)}


@pytest.fixture(params=["local", "s3"])
def lake_and_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[dict[str, Any], Store]:
    if request.param == "local":
        root = tmp_path / "lake"

        async def read_local(key: str) -> bytes:
            return (root / key).read_bytes()

        async def keys_local() -> list[str]:
            return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

        return {"type": "local", "options": {"root": str(root)}}, Store(read_local, keys_local)
    client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("moto_endpoint")

    async def read_s3(key: str) -> bytes:
        return await get_object(client, bucket, key)

    async def keys_s3() -> list[str]:
        return await object_keys(client, bucket)

    return {"type": "s3", "options": {"bucket": bucket, "endpoint_url": endpoint}}, Store(read_s3, keys_s3)


async def test_reprocess_rebuilds_each_day_byte_for_byte_and_never_touches_the_raw_zone(
    lake_and_store: tuple[dict[str, Any], Store],
) -> None:
    section, store = lake_and_store
    for day in DAYS:
        await run_pipeline(replay_config(section, SAMPLE / day.isoformat()), trend_date=day)
    cleaned = await store.snapshot("cleaned_data/")
    raw = await store.snapshot("raw_data/")
    manifests = await store.snapshot("_manifests/")

    summary = await reprocess(load_config(replay_config(section)), DAYS[0] - dt.timedelta(days=1), DAYS[1])

    assert (summary.rebuilt, summary.skipped, summary.failed) == (list(DAYS), [DAYS[0] - dt.timedelta(days=1)], {})
    assert summary.describe() == "rebuilt 2, skipped 1 (no raw zone), failed 0"
    assert await store.snapshot("cleaned_data/") == cleaned, "the same transformer rebuilds the same bytes"
    assert await store.snapshot("raw_data/") == raw, "the raw zone is read, never written"
    for key, before in manifests.items():
        old, new = json.loads(before), json.loads(await store.read(key))
        assert new["run_id"] != old["run_id"]
        assert new["objects"]["raw"] == old["objects"]["raw"], "the new manifest names the same raw pages"
        assert new["built_by"] == {"transformer": "standardize", "pipeline_version": project_version()}
    again = await reprocess(load_config(replay_config(section)), DAYS[0], DAYS[1])
    assert again.rebuilt == list(DAYS) and await store.snapshot("cleaned_data/") == cleaned, "idempotent"


async def test_a_raw_file_no_manifest_names_is_not_a_raw_zone_and_the_day_is_skipped(tmp_path: Path) -> None:
    # A raw file at the day's key without a run tag was never written by this protocol: nothing vouches for it.
    root = tmp_path / "lake"
    day = DAYS[1]
    stray = root / LAYOUT.key("raw", day, FEED)
    stray.parent.mkdir(parents=True)
    lines = [(SAMPLE / day.isoformat() / name).read_bytes().strip() for name in ("_lookups.json", "page-001.json")]
    stray.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    before = stray.read_bytes()
    section = {"type": "local", "options": {"root": str(root)}}

    summary = await reprocess(load_config(replay_config(section)), day, day)

    assert (summary.rebuilt, summary.skipped) == ([], [day]), summary.failed
    assert not (root / LAYOUT.key("manifest", day, FEED)).exists()
    assert stray.read_bytes() == before
    assert not list((root / "raw_data").rglob("*.run-*")), "no new raw object"


def test_a_failing_day_keeps_its_cleaned_file_the_others_go_on_and_the_exit_is_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "lake"
    section = {"type": "local", "options": {"root": str(root)}}
    path = tmp_path / "c.yml"
    for day in DAYS:
        path.write_text(json.dumps(replay_config(section, SAMPLE / day.isoformat())))
        assert main(["run", "--config", str(path), "--date", day.isoformat(), "-q"]) == 0
    manifest = json.loads((root / LAYOUT.key("manifest", DAYS[0], FEED)).read_text())
    raw = root / manifest["objects"]["raw"]["key"]
    raw.write_bytes(raw.read_bytes() + b"tampered")
    cleaned = (root / LAYOUT.key("cleaned", DAYS[0], FEED)).read_bytes()
    capsys.readouterr()

    code = main(["reprocess", "--config", str(path), "--from", DAYS[0].isoformat(), "--to", DAYS[1].isoformat()])

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == "rebuilt 1, skipped 0 (no raw zone), failed 1\n"
    assert "reprocess 1/2: 2026-11-24 failed: " in captured.err
    assert "does not match its manifest's sha256" in captured.err
    assert "reprocess 2/2: 2026-11-25 rebuilt (57 rows)" in captured.err
    assert (root / LAYOUT.key("cleaned", DAYS[0], FEED)).read_bytes() == cleaned


def test_reprocess_rejects_a_range_that_ends_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yml"
    path.write_text(json.dumps(replay_config({"type": "local", "options": {"root": str(tmp_path)}})))
    assert main(["reprocess", "--config", str(path), "--from", "2026-11-25", "--to", "2026-11-01"]) == 2
    assert capsys.readouterr().err == "error: --to 2026-11-01 is before --from 2026-11-25\n"
