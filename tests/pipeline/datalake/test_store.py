"""Lock records and lock liveness, edge by edge."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from pipeline.datalake.store import LockRecord, lock_is_live
from pipeline.stage import Feed

STARTED = dt.datetime(2026, 11, 25, 12, 0, 5, tzinfo=dt.UTC)
RECORD = LockRecord(
    run_id="r1",
    trend_date=dt.date(2026, 11, 25),
    feed=Feed("tv", "week"),
    host="builder",
    pid=4242,
    started_at=STARTED,
    objects=("_versions/a.run-r1.csv", "raw_data/a.run-r1.jsonl.gz"),
    previous_version="_versions/a.run-r0.csv",
)
EXPECTED = b"""{
  "feed": {
    "media_type": "tv",
    "time_window": "week"
  },
  "host": "builder",
  "objects": [
    "_versions/a.run-r1.csv",
    "raw_data/a.run-r1.jsonl.gz"
  ],
  "pid": 4242,
  "previous_version": "_versions/a.run-r0.csv",
  "run_id": "r1",
  "started_at": "2026-11-25T12:00:05+00:00",
  "trend_date": "2026-11-25"
}
"""


def test_a_lock_record_is_stable_json_and_reads_back_whole() -> None:
    assert RECORD.to_bytes() == EXPECTED
    assert LockRecord.from_bytes(EXPECTED) == RECORD
    assert RECORD.describe() == "run r1 on builder (pid 4242) since 2026-11-25 12:00:05Z"


def test_a_record_without_a_previous_version_reads_back_as_none() -> None:
    first = LockRecord("r2", RECORD.trend_date, Feed(), "h", 1, STARTED, ())
    assert LockRecord.from_bytes(first.to_bytes()) == first
    assert b'"previous_version": null' in first.to_bytes()


@pytest.mark.parametrize(
    "data",
    [b"", b'{"run_id": "r1"', b"[]", b'{"feed": {}}', EXPECTED.replace(b'"pid": 4242', b'"pid": "x"')],
)
def test_a_write_cut_short_is_not_a_record(data: bytes) -> None:
    assert LockRecord.from_bytes(data) is None


def _mine(pid: int, started_at: dt.datetime = STARTED) -> LockRecord:
    return LockRecord("r", RECORD.trend_date, Feed(), socket.gethostname(), pid, started_at, ())


@pytest.fixture
def dead_pid() -> int:
    """The id of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def hangups() -> Iterator[list[int]]:
    """SIGHUPs this process receives while the test runs (a liveness probe must send signal 0 only)."""
    seen: list[int] = []
    previous = signal.signal(signal.SIGHUP, lambda number, frame: seen.append(number))
    yield seen
    signal.signal(signal.SIGHUP, previous)


def test_a_lock_older_than_the_timeout_is_dead_wherever_it_was_taken() -> None:
    now = STARTED + dt.timedelta(seconds=61)
    assert lock_is_live(RECORD, 60, now=now) is False
    assert lock_is_live(_mine(os.getpid()), 60, now=now) is False


def test_a_lock_exactly_the_timeout_old_still_counts() -> None:
    assert lock_is_live(RECORD, 60, now=STARTED + dt.timedelta(seconds=60)) is True


def test_a_young_lock_from_another_host_is_live() -> None:
    assert lock_is_live(RECORD, 60, now=STARTED + dt.timedelta(seconds=1)) is True


def test_without_now_the_age_is_measured_from_the_clock(hangups: list[int]) -> None:
    fresh = _mine(os.getpid(), dt.datetime.now(dt.UTC))
    assert lock_is_live(fresh, 3600) is True
    assert hangups == []
    assert lock_is_live(_mine(os.getpid(), STARTED), 60) is False


def test_on_this_host_the_process_table_answers(dead_pid: int, hangups: list[int]) -> None:
    now = STARTED + dt.timedelta(seconds=1)
    assert lock_is_live(_mine(os.getpid()), 60, now=now) is True
    assert hangups == [], "the probe must not signal the process"
    assert lock_is_live(_mine(dead_pid), 60, now=now) is False


def test_a_process_we_may_not_signal_is_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(pid: int, number: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", denied)
    assert lock_is_live(_mine(1), 60, now=STARTED + dt.timedelta(seconds=1)) is True
