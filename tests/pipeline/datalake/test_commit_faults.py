"""The commit protocol under every fault: a failure, a SIGKILL or a cancellation after each step of a run.

For each loader a probe run counts the steps of one run that replaces a committed day
(file-system steps for ``local``, S3 requests for ``s3``); then, for every step *k* and
every mode, a fresh copy of the lake holding the *old* day gets a run (a forked
``python -m pipeline``) that fails or is killed at step *k*. Each time the test asserts:

1. a reader sees the day entirely old or entirely new: through the manifest
   (``read_committed``, ``read_day``) and at the cleaned key itself; another day is untouched;
2. a failed run exits 1 with one ``error:`` line that says what happened to the lake; a cancelled
   one (SIGTERM to the CLI: 143; ``task.cancel()`` of a library run) says it as truly;
3. the next run, of another day, heals the lake: afterwards ``repair --check`` finds
   nothing, and no lock, temp file or multipart upload is left. The healing is the step every
   run starts with (``recover()``); at the last point of each shard it is a whole run of the
   next day, which must also commit.

The count of points is written in ``docs/lake-protocol.md``; a test keeps it true.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import re
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config
from pipeline.datalake import LakeLoader
from pipeline.runner import build_stages, new_context, run_stages
from pipeline.stage import Feed
from stages.loaders.local import LocalLoader, LocalOptions
from stages.loaders.s3 import S3Loader, S3Options
from tests.support.cli import error_lines
from tests.support.faults import CANCELLED_EXIT, CANCELS, ChildResult, FaultProxy, FsFaults, proxy_for, run_child
from tests.support.fixtures_s3 import aws_environment, aws_session, clone_bucket
from tests.support.sample import replay_config, write_config

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tests/data/sample"


@functools.cache
def pages(day: str) -> Path:
    """The first page (and lookups) of a sample day: what the protocol does is the same for one page or many."""
    folder = Path(tempfile.mkdtemp(prefix=f"faults-{day}-"))
    for name in ("_lookups.json", "page-001.json"):
        shutil.copy(SAMPLE / day / name, folder / name)
    return folder


DAY = dt.date(2026, 11, 25)
OTHER_DAY = DAY - dt.timedelta(days=1)
NEXT_DAY = DAY + dt.timedelta(days=1)
FEED = Feed()
DOC = ROOT / "docs/lake-protocol.md"

pytestmark = pytest.mark.timeout(240)


def write_day_config(path: Path, loader: dict[str, Any]) -> Path:
    """Replay the sample's first page of 2026-11-25 (records carry their fetch time: a run's bytes are known)."""
    return write_config(path, replay_config(loader, pages("2026-11-25")))


class Lake:
    """One loader kind: a template lake holding the old day, fresh copies of it, and its leftovers."""

    kind: str

    def section(self, where: str) -> dict[str, Any]:
        raise NotImplementedError

    def loader(self, where: str, day: dt.date = DAY) -> LakeLoader[Any]:
        """A loader on ``where`` for a run of ``day`` (the checks' own: built from options, not from a config file)."""
        raise NotImplementedError

    async def copy(self, source: str) -> str:
        raise NotImplementedError

    async def leftovers(self, where: str) -> list[str]:
        raise NotImplementedError

    def stored(self, where: str, key: str) -> bytes | None:
        """The bytes the store holds at ``key`` (read from the store itself, not through a loader)."""
        raise NotImplementedError

    async def commit(self, where: str, day: dt.date, day_pages: str) -> None:
        """One successful run, in this process."""
        context = new_context(day)
        stages = build_stages(load_config(replay_config(self.section(where), pages(day_pages))), context)
        await run_stages(dataclasses.replace(stages, loader=self.loader(where, day)), context)

    async def view(self, where: str, *, healed: bool = False) -> tuple[bytes | None, bytes | None, bytes | None]:
        """The day through its manifest, the bytes at the cleaned key itself, and the other day's bytes.

        ``healed``: the view after healing, which is compared with the one before: the day's bytes through the
        manifest and at the cleaned key only (the decoding read and the other day were checked before healing).
        """
        async with self.loader(where) as loader:
            found = await loader.read_committed(DAY, FEED)
            if not healed:
                frame = await loader.read_day(DAY, FEED)
                assert (found is None) == (frame is None)
            seed = self.stored(where, loader.layout.key("cleaned", DAY, FEED))
            other = None if healed else await loader.read_committed(OTHER_DAY, FEED)
        return (found[0] if found else None), seed, (other[0] if other else None)

    async def committed(self, where: str, day: dt.date) -> bool:
        """Whether ``day`` has a committed version."""
        async with self.loader(where, day) as loader:
            return await loader.read_committed(day, FEED) is not None

    async def recover(self, where: str) -> None:
        """What a run of any day does first: heal dead runs' days and remove their leftovers."""
        async with self.loader(where, NEXT_DAY) as loader:
            await loader.recover()

    async def health(self, where: str) -> list[str]:
        """What ``repair --check`` finds."""
        async with self.loader(where) as loader:
            report = await loader.repair(check=True)
        return report.problems + report.actions


class LocalLake(Lake):
    kind = "local"

    def __init__(self, base: Path, **options: str) -> None:
        self.base = base
        self.options = options  # format, layout

    def section(self, where: str) -> dict[str, Any]:
        return {"type": "local", "options": {"root": where, **self.options}}

    def loader(self, where: str, day: dt.date = DAY) -> LakeLoader[Any]:
        options = LocalOptions(root=Path(where), **self.options)  # type: ignore[arg-type]
        return LocalLoader(options, new_context(day), name="local")

    async def copy(self, source: str) -> str:
        target = self.base / f"lake-{uuid.uuid4().hex[:8]}"
        shutil.copytree(source, target)
        return str(target)

    def stored(self, where: str, key: str) -> bytes | None:
        path = Path(where) / key
        return path.read_bytes() if path.is_file() else None

    async def leftovers(self, where: str) -> list[str]:
        root = Path(where)
        temps = [str(p) for p in root.rglob("*.tmp")]
        locks = [str(p) for p in (root / "_locks").rglob("*")] if (root / "_locks").exists() else []
        return temps + locks


class S3Lake(Lake):
    """Checks go straight to moto (the loaders' through one client); the run under test may go through the proxy."""

    kind = "s3"

    def __init__(self, endpoint: str, **options: str) -> None:
        self.endpoint = endpoint
        self.options = options  # format, layout
        self.client: Any = None

    def section(self, where: str, endpoint: str | None = None) -> dict[str, Any]:
        """The run's loader section: through ``endpoint`` (the proxy) if given."""
        url = endpoint or self.endpoint
        return {"type": "s3", "options": {"bucket": where, "endpoint_url": url, **self.options}}

    def loader(self, where: str, day: dt.date = DAY) -> LakeLoader[Any]:
        assert self.client is not None, "S3 checks run inside S3Lake.connected()"
        options = S3Options(bucket=where, endpoint_url=self.endpoint, **self.options)  # type: ignore[arg-type]
        return S3Loader(options, new_context(day), client=self.client)

    @contextlib.asynccontextmanager
    async def connected(self) -> AsyncIterator[None]:
        async with aws_session().client("s3", endpoint_url=self.endpoint, verify=False) as client:  # http: no TLS
            self.client = client
            try:
                yield
            finally:
                self.client = None

    async def copy(self, source: str) -> str:
        target = f"lake-{uuid.uuid4().hex[:12]}"
        clone_bucket(source, target)
        return target

    def stored(self, where: str, key: str) -> bytes | None:
        found = moto_bucket(where).keys.get(key)
        return None if found is None else bytes(found.value)

    async def leftovers(self, where: str) -> list[str]:
        bucket = moto_bucket(where)
        uploads = [upload.key_name for upload in bucket.multiparts.values()]
        return uploads + [key for key in bucket.keys if key.startswith("_locks/")]


def moto_bucket(name: str) -> Any:
    """The bucket ``name`` inside the session's moto server, which runs in this process.

    What the checks of the store itself (the cleaned key's bytes, open uploads, lock objects) read: the same as
    asking through the S3 API, without two requests' worth of client and server work at every point.
    """
    from moto.s3.models import s3_backends

    located = s3_backends.bucket_accounts.get(name)
    assert located is not None, f"{name} is not a bucket of this process's moto server"
    partition, account_id = located
    return s3_backends[account_id][partition].get_bucket(name)


class Harness:
    """Runs one fault point and checks the three promises; keeps a tally of what the points left."""

    def __init__(self, lake: Lake, template: str, old: bytes, new: bytes, other: bytes, workdir: Path) -> None:
        self.lake, self.template, self.old, self.new, self.other = lake, template, old, new, other
        self.workdir = workdir
        self.tally: Counter[str] = Counter()

    async def point(
        self, mode: str, at: int, run: Callable[[str, Path], ChildResult], expected: str, *, whole_run: bool = False
    ) -> None:
        """One fault point; the forked run blocks this loop on purpose (the child must not share it).

        ``whole_run``: heal with a whole run of the next day rather than with its first step alone.
        """
        lake = self.lake
        where = await lake.copy(self.template)
        result = run(where, self.workdir / f"{lake.kind}.yml")
        label = f"{lake.kind} {mode} at step {at}"
        found, seed, other = await lake.view(where)
        assert found in (self.old, self.new), f"{label}: the manifest's view is a mix"
        assert seed in (self.old, self.new), f"{label}: the cleaned key holds neither version"
        assert other == self.other, f"{label}: another day changed"
        state = "new" if found == self.new else "old"
        if result.code == 0:  # the step's failure was one the run may shrug off (a folder fsync, an rmdir)
            expected = "new"
        assert state == expected, f"{label}: the day is {state}; the commit point says {expected}"
        if result.code is not None:
            lines = error_lines(result.stderr)
            if result.code == 0:
                assert state == "new" and not lines, f"{label}: exit 0 but the day is {state}: {result.stderr}"
            else:
                code = {"term": 128 + CANCELS["term"], "cancel": CANCELLED_EXIT}.get(mode, 1)
                assert result.code == code and len(lines) == 1, f"{label}: {result.code} {result.stderr}"
                promise = "nothing was committed" if state == "old" else "was committed by run"
                assert promise in lines[0], f"{label}: {lines[0]}"
        # The next run, of another day, heals what this one left: its first step, recover(), is what heals
        # (a whole run adds a commit of another day, which is what the protocol's other tests show).
        if whole_run:
            await lake.commit(where, NEXT_DAY, "2026-11-25")
            assert await lake.committed(where, NEXT_DAY), f"{label}: the next run did not commit"
        else:
            await lake.recover(where)
        assert await lake.health(where) == [], f"{label}: not healed"
        assert await lake.leftovers(where) == [], f"{label}: leftovers after healing"
        healed, healed_seed, _ = await lake.view(where, healed=True)
        assert healed == found and healed_seed == healed, f"{label}: healing changed the reader's view"
        self.tally[f"{mode}:{state}:{'killed' if result.code is None else result.code}"] += 1


async def setup_lake(lake: Lake, template: str) -> tuple[bytes, bytes]:
    """Commit the other day and the old version of the day; returns (old, other) bytes."""
    await lake.commit(template, OTHER_DAY, "2026-11-25")
    await lake.commit(template, DAY, "2026-11-24")
    old, seed, other = await lake.view(template)
    assert old is not None and other is not None and seed == old
    return old, other


def argv(config_path: Path) -> list[str]:
    return ["run", "--config", str(config_path), "--date", DAY.isoformat(), "-q"]


SHARDS = 3
"""Each loader's points are split into this many tests, so ``pytest -n`` spreads them over the cores."""


@dataclasses.dataclass
class Probe:
    """A template lake holding the old day, and what one full run over a copy of it did, step by step."""

    lake: Lake
    template: str
    old: bytes
    new: bytes
    other: bytes
    steps: list[str]
    commit_step: int
    """The step (1-based) that commits the day: the manifest's rename or ``PutObject``."""
    manifest_step: int
    """The first step of the manifest's write (its folder, its temp file; on S3 the ``PutObject`` itself)."""

    def points(self, shard: int) -> range:
        """The steps this shard covers: every one of them, across the shards."""
        return range(1 + shard, len(self.steps) + 1, SHARDS)

    def expected(self, mode: str, at: int) -> str:
        """The day after a fault at ``at``: a kill or cancel after the commit step, or a failure past it, leaves it new.

        A cancellation lands after its step was done, as a kill does, and the manifest's write, once begun, is
        finished before the cancellation is raised: from its first step on, the day is new (on S3 the case of a
        ``PutObject`` applied whose answer had not yet come).
        """
        if mode in CANCELS:  # a cancellation during the manifest's write lets it finish: the day is committed
            return "new" if at >= self.manifest_step else "old"
        new = at >= self.commit_step if mode == "kill" else at > self.commit_step
        return "new" if new else "old"


def _commit_step(steps: list[str], pattern: str) -> int:
    [index] = [n for n, step in enumerate(steps, start=1) if re.search(pattern, step)]
    return index


def _local_probe(base: Path, **options: str) -> Probe:
    """A template lake in ``options``' format and layout, and a counting run over a copy of it."""

    async def probe() -> Probe:
        lake = LocalLake(base, **options)
        template = str(base / "template")
        old, other = await setup_lake(lake, template)
        where = await lake.copy(template)
        run = run_child(argv(write_day_config(base / "probe.yml", lake.section(where))), base, fs=FsFaults())
        assert run.code == 0, run.stderr
        new = (await lake.view(where))[0]
        assert new is not None and new != old
        commit = _commit_step(run.steps, r"^replace .*/_manifests/.*\.tmp$")
        manifest = min(n for n, step in enumerate(run.steps, start=1) if "/_manifests/" in step)
        return Probe(lake, template, old, new, other, run.steps, commit, manifest)

    found = asyncio.run(probe())
    assert len(found.steps) >= 20, found.steps
    assert f"{len(found.steps)} file-system steps" in DOC.read_text(encoding="utf-8"), "docs must say the count"
    return found


@pytest.fixture(scope="module")
def local_probe(tmp_path_factory: pytest.TempPathFactory) -> Probe:
    """The default lake: CSV, monthly layout."""
    return _local_probe(tmp_path_factory.mktemp("local-faults"))


@pytest.fixture(scope="module")
def local_parquet_hive_probe(tmp_path_factory: pytest.TempPathFactory) -> Probe:
    """The other format and the other layout: Parquet in hive partitions."""
    return _local_probe(tmp_path_factory.mktemp("local-faults-parquet"), format="parquet", layout="hive")


@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("mode", ["fail", "kill"])
async def test_local_commit_survives_a_failure_or_a_kill_at_every_file_system_step(
    local_probe: Probe, mode: str, shard: int, tmp_path: Path
) -> None:
    probe, lake = local_probe, local_probe.lake
    harness = Harness(lake, probe.template, probe.old, probe.new, probe.other, tmp_path)
    for at in probe.points(shard):

        def run(where: str, path: Path, at: int = at) -> ChildResult:
            return run_child(argv(write_day_config(path, lake.section(where))), tmp_path, fs=FsFaults(mode, at))

        await harness.point(mode, at, run, probe.expected(mode, at), whole_run=at == probe.points(shard)[-1])
    assert sum(harness.tally.values()) == len(probe.points(shard))


@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("mode", list(CANCELS))
async def test_local_commit_survives_a_cancellation_at_every_file_system_step(
    local_probe: Probe, mode: str, shard: int, tmp_path: Path
) -> None:
    """SIGTERM to the CLI (what GitHub Actions sends on cancel or timeout), or ``task.cancel()`` of a library run."""
    probe, lake = local_probe, local_probe.lake
    harness = Harness(lake, probe.template, probe.old, probe.new, probe.other, tmp_path)
    for at in probe.points(shard):

        def run(where: str, path: Path, at: int = at) -> ChildResult:
            config_path = write_day_config(path, lake.section(where))
            return run_child(argv(config_path), tmp_path, fs=FsFaults(mode, at), library=mode == "cancel")

        await harness.point(mode, at, run, probe.expected(mode, at), whole_run=at == probe.points(shard)[-1])
    assert sum(harness.tally.values()) == len(probe.points(shard))
    assert any(key.startswith(f"{mode}:new:") for key in harness.tally) or shard, harness.tally


@pytest.mark.parametrize("shard", range(SHARDS))
async def test_a_parquet_hive_lake_survives_a_kill_at_every_file_system_step(
    local_parquet_hive_probe: Probe, shard: int, tmp_path: Path
) -> None:
    probe, lake = local_parquet_hive_probe, local_parquet_hive_probe.lake
    harness = Harness(lake, probe.template, probe.old, probe.new, probe.other, tmp_path)
    for at in probe.points(shard):

        def run(where: str, path: Path, at: int = at) -> ChildResult:
            return run_child(argv(write_day_config(path, lake.section(where))), tmp_path, fs=FsFaults("kill", at))

        await harness.point("kill", at, run, probe.expected("kill", at), whole_run=at == probe.points(shard)[-1])
    assert sum(harness.tally.values()) == len(probe.points(shard))


@contextlib.contextmanager
def _s3_probe(base: Path, moto_endpoint: str, **options: str) -> Iterator[tuple[Probe, FaultProxy]]:
    """A template bucket in ``options``' format and layout, a fault proxy in front of moto, and a counting run."""
    with pytest.MonkeyPatch.context() as env, proxy_for(moto_endpoint) as proxy:
        for name, value in aws_environment(base).items():
            env.setenv(name, value)
        env.setenv("AWS_MAX_ATTEMPTS", "1")  # an outage fails at once instead of after botocore's backoff

        async def probe() -> Probe:
            lake = S3Lake(moto_endpoint, **options)
            template = f"template-{uuid.uuid4().hex[:8]}"
            async with lake.connected():
                await lake.client.create_bucket(Bucket=template)
                old, other = await setup_lake(lake, template)
                where = await lake.copy(template)
                proxy.arm()
                run = run_child(argv(write_day_config(base / "probe.yml", lake.section(where, proxy.url))), base)
                assert run.code == 0, run.stderr
                new = (await lake.view(where))[0]
            assert new is not None and new != old
            steps = list(proxy.log)
            commit = _commit_step(steps, r" PUT /lake-\w+/_manifests/")
            return Probe(lake, template, old, new, other, steps, commit, commit)

        async def warm() -> None:
            # Parse botocore's S3 model once here: every forked run below inherits it instead of reading it again.
            async with S3Loader(S3Options(bucket="warm-up", endpoint_url=moto_endpoint), new_context(DAY)):
                pass

        asyncio.run(warm())
        found = asyncio.run(probe())
        assert len(found.steps) >= 10, found.steps
        assert f"{len(found.steps)} S3 requests" in DOC.read_text(encoding="utf-8"), "docs must say the count"
        yield found, proxy


@pytest.fixture(scope="module")
def s3_probe(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[tuple[Probe, FaultProxy]]:
    """The default lake on S3: CSV, monthly layout."""
    with _s3_probe(tmp_path_factory.mktemp("s3-faults"), moto_endpoint) as found:
        yield found


@pytest.fixture(scope="module")
def s3_parquet_hive_probe(
    tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str
) -> Iterator[tuple[Probe, FaultProxy]]:
    """The other format and the other layout on S3: Parquet in hive partitions."""
    base = tmp_path_factory.mktemp("s3-faults-parquet")
    with _s3_probe(base, moto_endpoint, format="parquet", layout="hive") as found:
        yield found


async def _s3_points(probe: Probe, proxy: FaultProxy, mode: str, shard: int, workdir: Path) -> None:
    """Every point of ``shard``: the run goes through the proxy, armed to fault at its step."""
    lake = probe.lake
    assert isinstance(lake, S3Lake)
    harness = Harness(lake, probe.template, probe.old, probe.new, probe.other, workdir)
    async with lake.connected():
        for at in probe.points(shard):

            def run(where: str, path: Path, at: int = at) -> ChildResult:
                started = functools.partial(proxy.arm, mode, at)
                config_path = write_day_config(path, lake.section(where, proxy.url))
                return run_child(argv(config_path), workdir, started=started, library=mode == "cancel")

            await harness.point(mode, at, run, probe.expected(mode, at), whole_run=at == probe.points(shard)[-1])
            proxy.arm()
    assert sum(harness.tally.values()) == len(probe.points(shard))


@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("mode", ["outage", "kill"])
async def test_s3_commit_survives_an_outage_or_a_kill_after_every_request(
    s3_probe: tuple[Probe, FaultProxy], mode: str, shard: int, tmp_path: Path
) -> None:
    await _s3_points(*s3_probe, mode, shard, tmp_path)


@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("mode", list(CANCELS))
async def test_s3_commit_survives_a_cancellation_while_each_applied_request_awaits_its_answer(
    s3_probe: tuple[Probe, FaultProxy], mode: str, shard: int, tmp_path: Path
) -> None:
    """Each request is forwarded to moto (applied), then the run is cancelled while its answer is held back."""
    await _s3_points(*s3_probe, mode, shard, tmp_path)


@pytest.mark.parametrize("shard", range(SHARDS))
async def test_a_parquet_hive_lake_on_s3_survives_a_kill_after_every_request(
    s3_parquet_hive_probe: tuple[Probe, FaultProxy], shard: int, tmp_path: Path
) -> None:
    await _s3_points(*s3_parquet_hive_probe, "kill", shard, tmp_path)
