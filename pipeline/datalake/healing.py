"""Healing: what a dead run left is finished or undone by the next run (``recover``) or on demand (``repair``).

A dead run's lock record says what it may have left. If the day's manifest names that run, the commit point
was passed and the day is rolled forward (published, the superseded version deleted); otherwise it is
rolled back (the run's objects deleted). Leftovers (temp files, open uploads) of runs that no live lock
owns are removed once they are old. ``repair`` also checks every committed day against its manifest.
"""

from __future__ import annotations

import dataclasses
import logging

from pipeline.datalake import manifest
from pipeline.datalake.layout import run_of
from pipeline.datalake.reads import Lake, sha256
from pipeline.datalake.store import LockClaim, LockRecord
from pipeline.datalake.tracked import Tracked
from pipeline.errors import CommitConflict, LoadError, OutsideLake

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RepairReport:
    """What ``repair`` found and did (or, with ``check``, would do)."""

    days: int = 0
    actions: list[str] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    lake: str = ""

    @property
    def healthy(self) -> bool:
        """Nothing was found that needed healing."""
        return not self.actions and not self.problems


async def recover(lake: Lake) -> RepairReport:
    """Heal every day a dead run left unfinished and remove its leftovers; one log line per action."""
    report = RepairReport()
    await _recover(lake, report, check=False)
    for action in report.actions:
        logger.warning("recovered: %s", action)
    return report


async def repair(lake: Lake, *, check: bool = False) -> RepairReport:
    """Heal the whole lake, or with ``check`` only report: stale locks, leftovers, unpublished or orphan files."""
    report = RepairReport(lake=lake.store.describe())
    live = await _recover(lake, report, check=check)
    store, layout = lake.store, lake.layout
    referenced: set[str] = set()
    unread = False
    for key in await store.list_keys(layout.root("manifest") + "/"):
        report.days += 1
        try:
            entry = await lake.manifest_at(key)
        except LoadError as exc:  # refused or unreadable: reported, and what it names is left alone
            report.problems.append(str(exc.args[0]))
            unread = True
            continue
        version = entry.version_key
        if version:
            referenced.add(version)
        seed = str(entry.cleaned.get("key") or "")
        stored = await store.get_object(seed) if seed else None
        if stored is not None and sha256(stored.data) == entry.cleaned.get("sha256"):
            continue
        source = await store.get_object(version) if version else None
        if source is None or sha256(source.data) != entry.cleaned.get("sha256"):
            report.problems.append(f"{lake.locate(seed)}: does not match {lake.locate(key)} and no copy does")
        elif check:
            report.problems.append(f"{lake.locate(seed)}: not yet published from {lake.locate(version or '')}")
        else:
            await store.copy_object(str(version), seed)
            report.actions.append(f"published {lake.locate(seed)} from run {entry.run_id}")
    for key in await store.list_keys(layout.root("version") + "/"):
        if key in referenced or run_of(key) in live:
            continue
        if unread:  # a manifest that could not be read may name it
            report.problems.append(f"{lake.locate(key)}: no readable manifest names it; left alone")
        elif check:
            report.problems.append(f"{lake.locate(key)}: a version no manifest names")
        else:
            await store.delete_object(key)
            report.actions.append(f"removed {lake.locate(key)}, a version no manifest names")
    return report


async def heal(lake: Lake, claim: LockClaim) -> str:
    """Finish or undo the dead run recorded in ``claim``; says what it did."""
    record = claim.stale
    if record is None:
        return f"removed the unreadable lock {lake.locate(claim.key)} (its run wrote nothing yet)"
    confine(lake, claim, record)
    store, day, feed = lake.store, record.trend_date, record.feed
    for leftover in await store.leftovers():
        if leftover.run_id == record.run_id:
            await store.remove_leftover(leftover)
    current = await lake.manifest(day, feed)
    if current is not None and current.run_id == record.run_id:
        await lake.publish(current)
        if record.previous_version and record.previous_version != current.version_key:
            await store.delete_object(record.previous_version)
        return f"{day} {feed.slug}: rolled forward to run {record.run_id}, which had committed"
    for key in record.objects:
        await store.delete_object(key)
    if current is not None:
        await lake.publish(current)
    return f"{day} {feed.slug}: rolled back run {record.run_id}, which died before its commit"


def confine(lake: Lake, claim: LockClaim, record: LockRecord) -> None:
    """``OutsideLake`` unless every object the record names is its own run's, inside the lake."""
    manifest.confine_record(record, lake.layout, lake.locate(claim.key), stage=lake.stage)


async def release_quietly(lake: Lake, claim: LockClaim, *, keep_record: bool) -> None:
    """Release ``claim``; a failure is logged, since the run's own error (if any) is the one to report."""
    try:
        await lake.store.release_lock(claim, keep_record=keep_record)
    except Exception as exc:
        logger.warning("could not release the lock %s: %s", lake.locate(claim.key), exc)


async def _recover(lake: Lake, report: RepairReport, *, check: bool) -> set[str]:
    """Heal (or, with ``check``, only report) stale locks and leftovers. Returns the live runs' ids."""
    store = lake.store
    # Leftovers are listed before the locks are looked at: anything a run leaves is created
    # after its lock record, so a leftover whose run shows no live lock below is dead.
    candidates = await store.leftovers()
    live: set[str] = set()
    keys = await store.list_keys(lake.layout.root("lock") + "/")
    # a lock's record is <name>.json; a store may keep a <name>.lock beside it (the local lake does)
    for key in sorted({k[: -len(".lock")] + ".json" if k.endswith(".lock") else k for k in keys}):
        if not key.endswith(".json"):
            continue
        try:
            claim = await store.claim_lock(key)
        except CommitConflict:
            stored = await store.get_object(key)
            record = LockRecord.from_bytes(stored.data) if stored else None
            if record is not None:
                live.add(record.run_id)
            continue
        settled = False
        try:
            if claim.stale is None and not claim.stale_unreadable:
                pass  # an empty lock: its run had written nothing yet
            elif check:
                if claim.stale is not None:
                    confine(lake, claim, claim.stale)
                report.problems.append(f"{lake.locate(key)}: left by a dead run; repair heals it")
            else:
                report.actions.append(await heal(lake, claim))
            settled = True
        except OutsideLake as exc:
            # Another day's lock that names what is not its run's: reported, kept, and never acted on.
            logger.warning("%s", exc)
            report.problems.append(str(exc))
        finally:
            # A heal that failed keeps the dead run's record, so that the next run (or repair) can still finish it.
            await release_quietly(lake, claim, keep_record=check or not settled)
    for leftover in candidates:
        if leftover.run_id in live or not leftover.old:
            continue
        if check:
            report.problems.append(f"{leftover.label}: left by an interrupted run")
            continue
        await store.remove_leftover(leftover)
        report.actions.append(f"removed {leftover.label}, left by an interrupted run")
    return live


async def discard(lake: Lake, claim: LockClaim, sinks: list[Tracked]) -> bool:
    """Abort ``sinks``, delete the ones that may be stored, release ``claim``; ``False`` if something stayed."""
    clean = True
    for tracked in sinks:
        try:
            if not tracked.committed:
                await tracked.sink.abort()
            if tracked.committing:  # run-scoped keys: nothing but this run ever wrote them
                await lake.store.delete_object(tracked.key)
        except Exception as exc:
            clean = False
            # one line by default (the run's own error follows); the traceback only with -v
            logger.warning("could not remove %s: %s", lake.locate(tracked.key), exc)
            logger.debug("cleanup failure of %s", lake.locate(tracked.key), exc_info=True)
    unhealed = claim.stale is not None or claim.stale_unreadable
    await release_quietly(lake, claim, keep_record=unhealed or not clean)
    return clean


def nothing_committed(day: object, clean: bool) -> str:
    """The outcome of a run that undid itself."""
    if clean:
        return f"nothing was committed; {day} keeps its previous data"
    return f"nothing was committed; {day} keeps its previous data, and the next run removes what this one left"
