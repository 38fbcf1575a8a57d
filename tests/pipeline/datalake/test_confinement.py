"""Keys read back from the lake are untrusted: no hand-edited manifest or lock record moves a run outside it.

Every case plants a victim file (or object) outside the lake, edits a manifest or a lock record to name it
in one form (absolute, ``..``, percent-encoded, through a symlink, another zone), and then runs what would
act on it: the next run of the day, a run of another day, ``repair`` and ``repair --check``. The victim must
be untouched, and the one line the CLI prints names the object that was refused.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.datalake import Layout, LockRecord, StoredObject
from pipeline.datalake.manifest import Manifest, parse
from pipeline.errors import LoadError, OutsideLake
from pipeline.stage import Feed
from tests.support.cli import CliResult, error_lines
from tests.support.fixtures_s3 import get_object, object_keys

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tests/data/sample"
DAY = dt.date(2026, 11, 25)
OTHER_DAY = dt.date(2026, 11, 24)
FEED = Feed()
LAYOUT = Layout()
VICTIM = b"precious data outside the lake\n"

pytestmark = pytest.mark.timeout(60)


def write_config(tmp_path: Path, loader: dict[str, Any], day: str = "2026-11-25") -> str:
    path = tmp_path / f"config-{day}.yml"
    document = {
        "extractor": {"type": "replay", "options": {"path": str(SAMPLE / day)}},
        "transformer": {"type": "standardize"},
        "loader": loader,
    }
    path.write_text(json.dumps(document), encoding="utf-8")  # JSON is YAML
    return str(path)


def run_day(run_cli: Callable[..., CliResult], config: str, day: dt.date, *extra: str) -> CliResult:
    return run_cli("run", "--config", config, "--date", day.isoformat(), "-q", *extra)


@pytest.fixture
def lake(tmp_path: Path, run_cli: Callable[..., CliResult]) -> Path:
    """A local lake holding the day (committed by a real run)."""
    root = tmp_path / "lake"
    config = write_config(tmp_path, {"type": "local", "options": {"root": str(root)}})
    assert run_day(run_cli, config, DAY).returncode == 0
    return root


def local_config(tmp_path: Path, root: Path) -> str:
    return write_config(tmp_path, {"type": "local", "options": {"root": str(root)}})


def edit_manifest(root: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    path = root / LAYOUT.key("manifest", DAY, FEED)
    document = json.loads(path.read_text(encoding="utf-8"))
    edit(document)
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def hostile_keys(victim: Path) -> dict[str, str]:
    """The forms a hostile key takes, each naming ``victim`` (which lies beside the lake folder)."""
    return {
        "absolute": str(victim),
        "dot-dot": f"../{victim.name}",
        "dot-dot inside the zone": f"_versions/2026/11/../../../../{victim.name}",
        "percent-encoded": f"_versions/%2e%2e/%2e%2e/%2e%2e/{victim.name}",
        "another zone": LAYOUT.key("cleaned", DAY, FEED),
        "another day": LAYOUT.run_key("version", OTHER_DAY, FEED, "abc"),
    }


@pytest.mark.parametrize("form", list(hostile_keys(Path("v"))))
def test_a_manifest_naming_a_version_outside_its_day_is_refused_and_nothing_is_deleted(
    lake: Path, tmp_path: Path, run_cli: Callable[..., CliResult], form: str
) -> None:
    victim = tmp_path / "victim.csv"
    victim.write_bytes(VICTIM)
    key = hostile_keys(victim)[form]
    published = (lake / LAYOUT.key("cleaned", DAY, FEED)).read_bytes()
    manifest = edit_manifest(lake, lambda d: d["objects"]["cleaned"].__setitem__("version_key", key))
    config = local_config(tmp_path, lake)

    rerun = run_day(run_cli, config, DAY, "--force")
    [line] = error_lines(rerun.stderr)
    assert rerun.returncode == 1
    assert f"refusing {manifest}: " in line and re.search(r"is not a (version key of 2026-11-25|key inside)", line)
    assert "nothing was committed" in line

    check = run_cli("repair", "--config", config, "--check")
    assert check.returncode == 1 and f"refusing {manifest}" in check.stdout + check.stderr
    repair = run_cli("repair", "--config", config)
    assert f"refusing {manifest}" in repair.stdout + repair.stderr
    assert victim.read_bytes() == VICTIM
    assert (lake / LAYOUT.key("cleaned", DAY, FEED)).read_bytes() == published  # the published day stays too


@pytest.mark.parametrize("field", ["key", "raw"])
def test_a_manifest_naming_a_cleaned_or_raw_key_outside_the_lake_is_refused(
    lake: Path, tmp_path: Path, run_cli: Callable[..., CliResult], field: str
) -> None:
    victim = tmp_path / "victim.csv"
    victim.write_bytes(VICTIM)
    if field == "key":
        edit_manifest(lake, lambda d: d["objects"]["cleaned"].__setitem__("key", str(victim)))
    else:
        edit_manifest(lake, lambda d: d["objects"]["raw"].__setitem__("key", f"raw_data/../../{victim.name}"))
    (lake / LAYOUT.key("cleaned", DAY, FEED)).unlink()  # so that repair would want to publish the day
    config = local_config(tmp_path, lake)
    repair = run_cli("repair", "--config", config)
    assert "refusing" in repair.stdout + repair.stderr and repair.returncode == 1
    rebuilt = run_cli("reprocess", "--config", config, "--from", DAY.isoformat())
    assert rebuilt.returncode == 1 and "refusing" in rebuilt.stdout + rebuilt.stderr, rebuilt
    assert victim.read_bytes() == VICTIM


def dead_lock(root: Path, day: dt.date, objects: tuple[str, ...], previous: str | None = None) -> Path:
    """A lock record as a run that died would leave it (its pid is not alive)."""
    record = LockRecord(
        run_id="deadrun",
        trend_date=day,
        feed=FEED,
        host=os.uname().nodename,
        pid=2**22 + 1,
        started_at=dt.datetime.now(dt.UTC),
        objects=objects,
        previous_version=previous,
    )
    path = root / LAYOUT.lock_key(day, FEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(record.to_bytes())
    return path


@pytest.mark.parametrize("form", ["absolute", "dot-dot", "another zone", "another run"])
def test_a_dead_runs_lock_naming_what_is_not_its_own_is_kept_and_never_acted_on(
    lake: Path, tmp_path: Path, run_cli: Callable[..., CliResult], form: str
) -> None:
    victim = tmp_path / "victim.csv"
    victim.write_bytes(VICTIM)
    published = lake / LAYOUT.key("cleaned", DAY, FEED)
    key = {
        "absolute": str(victim),
        "dot-dot": f"_versions/../../{victim.name}",
        "another zone": LAYOUT.key("cleaned", DAY, FEED),
        "another run": LAYOUT.run_key("version", DAY, FEED, "someoneelse"),
    }[form]
    lock = dead_lock(lake, OTHER_DAY, (key,))
    config = local_config(tmp_path, lake)
    manifest = lake / LAYOUT.key("manifest", DAY, FEED)
    before = json.loads(manifest.read_text(encoding="utf-8"))["run_id"]

    # A run of another day heals what it can, reports this lock, and commits its own day.
    other = run_day(run_cli, config, DAY, "--force")
    assert other.returncode == 0, other.stderr
    assert f"refusing the lock record {lock}" in other.stderr
    # The run of the lock's own day must not act on it either.
    other_day_config = write_config(tmp_path, {"type": "local", "options": {"root": str(lake)}}, "2026-11-24")
    same = run_day(run_cli, other_day_config, OTHER_DAY)
    [line] = error_lines(same.stderr)
    assert same.returncode == 1 and f"refusing the lock record {lock}" in line
    check = run_cli("repair", "--config", config, "--check")
    assert check.returncode == 1 and f"refusing the lock record {lock}" in check.stdout + check.stderr
    assert victim.read_bytes() == VICTIM and lock.exists()
    assert published.exists() and json.loads(manifest.read_text(encoding="utf-8"))["run_id"] != before  # it committed


def test_a_roll_forward_never_overwrites_a_file_outside_the_lake(
    lake: Path, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    victim = tmp_path / "victim.csv"
    victim.write_bytes(VICTIM)
    def edit(document: dict[str, Any]) -> None:
        document["run_id"] = "deadrun"  # the dead run below committed, so the next run rolls it forward
        document["objects"]["cleaned"]["key"] = str(victim)

    edit_manifest(lake, edit)
    dead_lock(lake, DAY, ())
    result = run_day(run_cli, local_config(tmp_path, lake), DAY, "--force")
    assert result.returncode == 1 and "refusing" in error_lines(result.stderr)[0]
    assert victim.read_bytes() == VICTIM


def test_a_symlink_inside_the_lake_does_not_lead_a_write_or_delete_out_of_it(
    lake: Path, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.csv").write_bytes(VICTIM)
    versions = lake / "_versions/2026/11"
    for path in versions.iterdir():
        (outside / path.name).write_bytes(path.read_bytes())
        path.unlink()
    versions.rmdir()
    versions.symlink_to(outside, target_is_directory=True)
    result = run_day(run_cli, local_config(tmp_path, lake), DAY, "--force")
    [line] = error_lines(result.stderr)
    assert result.returncode == 1 and "outside the lake" in line and "nothing was committed" in line
    assert sorted(p.name for p in outside.iterdir()) == sorted(p.name for p in outside.iterdir() if p.is_file())
    assert (outside / "victim.csv").read_bytes() == VICTIM
    assert len(list(outside.iterdir())) == 2  # the victim and the day's version: nothing added, nothing deleted


# -- repair outside a run, on a local lake ------------------------------------------------------


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_repair_republishes_a_damaged_cleaned_file_of_a_local_lake(
    lake: Path, tmp_path: Path, run_cli: Callable[..., CliResult], damage: str
) -> None:
    published = lake / LAYOUT.key("cleaned", DAY, FEED)
    good = published.read_bytes()
    if damage == "deleted":
        published.unlink()
    else:
        published.write_bytes(good[: len(good) // 2])
    config = local_config(tmp_path, lake)
    assert run_cli("repair", "--config", config, "--check").returncode == 1
    repair = run_cli("repair", "--config", config)
    assert repair.returncode == 0, repair.stderr
    assert f"published {published}" in repair.stdout
    assert published.read_bytes() == good
    assert run_cli("repair", "--config", config, "--check").returncode == 0
    assert not list(lake.rglob("*.tmp"))


# -- S3 -------------------------------------------------------------------------------------------


async def test_an_s3_manifest_naming_a_key_outside_the_prefix_is_refused(
    s3_client: Any,
    s3_bucket: str,
    moto_endpoint: str,
    aws_env: dict[str, str],
    tmp_path: Path,
    run_cli: Callable[..., CliResult],
) -> None:
    import asyncio

    def cli(*args: str) -> CliResult:
        return run_cli(*args, env=aws_env)

    loader = {"type": "s3", "options": {"bucket": s3_bucket, "prefix": "lake", "endpoint_url": moto_endpoint}}
    config = write_config(tmp_path, loader)
    first = await asyncio.to_thread(run_day, cli, config, DAY)
    assert first.returncode == 0, first.stderr
    await s3_client.put_object(Bucket=s3_bucket, Key="elsewhere/victim.csv", Body=VICTIM)
    manifest_key = Layout(prefix="lake").key("manifest", DAY, FEED)
    document = json.loads(await get_object(s3_client, s3_bucket, manifest_key))
    for key in ("elsewhere/victim.csv", "lake/_versions/../../elsewhere/victim.csv", "/elsewhere/victim.csv"):
        document["objects"]["cleaned"]["version_key"] = key
        await s3_client.put_object(Bucket=s3_bucket, Key=manifest_key, Body=json.dumps(document).encode())
        rerun = await asyncio.to_thread(run_day, cli, config, DAY, "--force")
        [line] = error_lines(rerun.stderr)
        assert rerun.returncode == 1 and f"refusing s3://{s3_bucket}/{manifest_key}" in line, key
        repair = await asyncio.to_thread(cli, "repair", "--config", config)
        assert "refusing" in repair.stdout + repair.stderr
        assert await get_object(s3_client, s3_bucket, "elsewhere/victim.csv") == VICTIM
    assert "elsewhere/victim.csv" in await object_keys(s3_client, s3_bucket)


# -- the rule itself ---------------------------------------------------------------------------------


@given(st.text(max_size=80), st.sampled_from(["lake", "a/b", ""]), st.sampled_from(["version", "raw", "cleaned"]))
def test_a_key_confine_accepts_never_leaves_its_zone(text: str, prefix: str, zone: str) -> None:
    layout = Layout(prefix=prefix)
    root = layout.root(zone)
    for key in (text, f"{root}/{text}", f"{root}/2026/{text}"):
        try:
            confined = layout.confine(key, zone)
        except OutsideLake:
            continue
        resolved = os.path.normpath(f"/lake/{confined}")
        assert resolved.startswith(f"/lake/{root}/"), key
        assert "%" not in confined and "\\" not in confined and "\x00" not in confined


def test_a_dead_runs_lock_whose_superseded_version_lies_outside_is_never_acted_on(
    lake: Path, tmp_path: Path, run_cli: Callable[..., CliResult]
) -> None:
    """A roll-forward deletes the version the lock says was superseded: that key is confined too."""
    victim = tmp_path / "victim.csv"
    victim.write_bytes(VICTIM)
    manifest = lake / LAYOUT.key("manifest", DAY, FEED)
    document = json.loads(manifest.read_text(encoding="utf-8"))
    lock = dead_lock(lake, DAY, (), previous=str(victim))
    document["run_id"] = "deadrun"  # the dead run had committed: the next run would roll it forward
    manifest.write_text(json.dumps(document), encoding="utf-8")
    check = run_cli("repair", "--config", local_config(tmp_path, lake), "--check")
    assert check.returncode == 1 and f"refusing the lock record {lock}" in check.stdout + check.stderr
    run_cli("repair", "--config", local_config(tmp_path, lake))
    assert victim.read_bytes() == VICTIM and lock.exists()


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        ({"protocol": None}, "is not a protocol 2 manifest (protocol None)"),
        ({"trend_date": "someday"}, "it does not say which day and feed it commits"),
        ({"trend_date": "2026-11-24"}, "it commits 2026-11-24 movies, which is stored elsewhere"),
    ],
)
def test_a_manifest_that_is_not_its_own_days_is_refused_by_readers_and_repair(
    lake: Path, tmp_path: Path, run_cli: Callable[..., CliResult], edit: dict[str, Any], said: str
) -> None:
    published = lake / LAYOUT.key("cleaned", DAY, FEED)
    good = published.read_bytes()
    manifest = edit_manifest(lake, lambda document: document.update(edit))
    check = run_cli("repair", "--config", local_config(tmp_path, lake), "--check")
    assert check.returncode == 1 and said in check.stdout, check.stdout
    assert str(manifest) in check.stdout
    history = run_cli("history", "--config", local_config(tmp_path, lake), "--date", DAY.isoformat(), "--days", "1")
    assert said in history.stdout + history.stderr or history.returncode != 0
    assert published.read_bytes() == good


def _parse(document: dict[str, Any], feed: Feed = FEED) -> Manifest:
    key = LAYOUT.key("manifest", DAY, feed)
    return parse(key, StoredObject(json.dumps(document).encode(), "etag"), LAYOUT, key)


def _document(feed: Feed = FEED, **objects: dict[str, str]) -> dict[str, Any]:
    """A day's manifest as a run writes it (only what ``parse`` reads)."""
    return {
        "protocol": 2,
        "trend_date": DAY.isoformat(),
        "feed": {"media_type": feed.media_type, "time_window": feed.time_window},
        "objects": objects,
    }


def test_a_manifest_of_another_feed_is_confined_to_that_feeds_keys() -> None:
    feed = Feed("tv", "week")
    version = LAYOUT.run_key("version", DAY, feed, "r1")
    entry = {"key": LAYOUT.key("cleaned", DAY, feed), "version_key": version}
    assert _parse(_document(feed, cleaned=entry), feed).version_key == version
    with pytest.raises(OutsideLake, match="which is stored elsewhere"):
        _parse(_document(FEED, cleaned=entry), feed)  # says movies, day: not the key it was read from


def test_a_manifest_whose_version_names_no_run_is_refused() -> None:
    """A version key is run-scoped (``….run-<id>.…``): one without a run is no version of this day."""
    untagged = "_versions/2026/11/2026-11-25_movies.csv"
    entry = {"key": LAYOUT.key("cleaned", DAY, FEED), "version_key": untagged}
    with pytest.raises(OutsideLake, match=f"{re.escape(repr(untagged))} is not a version key of 2026-11-25 movies"):
        _parse(_document(cleaned=entry))


def test_a_manifest_of_another_protocol_is_refused_naming_it() -> None:
    with pytest.raises(LoadError, match=r"is not a protocol 2 manifest \(protocol 1\)$"):
        _parse({**_document(), "protocol": 1})


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("../victim.csv", "'../victim.csv'"),
        ("_versions/" + "a" * 300, repr(("_versions/" + "a" * 300)[:200])),  # at most 200 characters of it
        (42, "'int'"),  # JSON that is not a key: its type
        (None, "'NoneType'"),
    ],
)
def test_a_refused_key_is_named_in_its_message(key: object, shown: str) -> None:
    with pytest.raises(OutsideLake) as caught:
        LAYOUT.confine(key, "version")
    assert str(caught.value) == f"{shown} is not a key inside the lake's _versions/"
