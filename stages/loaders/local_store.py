"""``LocalStore``: the lake in a folder on disk (the embedded default).

Each object is streamed to a hidden temporary file in its final folder, then fsynced
and ``os.replace``d into place, so readers see the old file or the new one, never half.
A day's lock is an advisory ``flock`` on ``_locks/<day>_<feed>.lock``, which the kernel
releases when its process dies; the record beside it (``.json``) says what the run may
have left. Temp files carry their run's id, so leftovers are told apart by the lock.
Every path is confined to the lake's folder once symlinks are followed.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import time
from pathlib import Path
from typing import IO

from pipeline.datalake import ZONE_FOLDERS, Leftover, LockClaim, LockRecord, ObjectSink, ObjectStore, StoredObject
from pipeline.datalake.files import TEMP_SUFFIX, fsync_folder, in_thread, temp_beside, write_bytes_atomic
from pipeline.datalake.layout import run_of
from pipeline.errors import CommitConflict, LoadError, OutsideLake

_RUN_TAGS = re.compile(r"\.run-([A-Za-z0-9_-]{1,64})(?=\.)")


class _FileSink(ObjectSink):
    """A temp file beside the target, renamed over it on commit."""

    def __init__(self, target: Path, run_id: str, stop: Path) -> None:
        self.target = target
        self._stop = stop
        fd, self.temp = temp_beside(target, run_id)
        self.file: IO[bytes] | None = os.fdopen(fd, "wb")

    async def write(self, data: bytes) -> None:
        assert self.file is not None, "write after commit or abort"
        self.file.write(data)

    async def commit(self) -> None:
        assert self.file is not None, "commit after commit or abort"
        await in_thread(self._sync_and_replace)

    def _sync_and_replace(self) -> None:
        assert self.file is not None
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        self.file = None
        os.replace(self.temp, self.target)
        fsync_folder(self.target.parent)

    async def abort(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.temp.unlink(missing_ok=True)
        _prune(self.temp.parent, self._stop)


def _prune(folder: Path, stop: Path) -> None:
    """Remove ``folder`` and its parents up to ``stop`` while they are empty."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _temp_run(name: str) -> str | None:
    """The run id in a temp file's name: the last ``.run-<id>.`` tag, since the target may carry one too."""
    tags = _RUN_TAGS.findall(name)
    return tags[-1] if tags else None


class LocalStore(ObjectStore):
    """Objects as files under ``root`` (keys are paths relative to it); ``writer`` tags temp files with a run id."""

    def __init__(
        self, root: Path, prefix: str = "", *, lock_timeout: float = 3600.0, writer: str | None = None, stage: str = ""
    ) -> None:
        self.root, self.prefix, self.lock_timeout, self.writer = root, prefix, lock_timeout, writer
        self._stage = stage or None

    async def __aenter__(self) -> LocalStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def describe(self) -> str:
        """The lake's folder."""
        return str(self.root / self.prefix)  # an empty prefix adds nothing to the path

    def locate(self, key: str) -> str:
        """The file path of ``key``."""
        return str(self.root / key)

    def _path(self, key: str) -> Path:
        """The file of ``key``, which must stay inside the lake's folder once links are followed."""
        path = self.root / key
        root = self._root_resolved
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise OutsideLake(f"refusing {path}: it resolves to {resolved}, outside the lake {root}", stage=self._stage)
        return path

    @functools.cached_property
    def _root_resolved(self) -> Path:
        return self.root.resolve()

    async def open_sink(self, key: str, content_type: str) -> ObjectSink:
        """A temp file beside the final path, named after this run."""
        return _FileSink(self._path(key), run_of(key) or self.writer or "", self.root)

    async def get_object(self, key: str) -> StoredObject | None:
        """The file's bytes (its token is their SHA-256), or ``None`` if it is not there."""
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return StoredObject(data, hashlib.sha256(data).hexdigest())

    async def put_object(
        self, key: str, data: bytes, content_type: str, *, if_match: str | None = None, if_absent: bool = False
    ) -> str:
        """Write atomically. The condition is checked under the day lock, which every writer of a day holds."""
        if if_match is not None or if_absent:
            current = await self.get_object(key)
            if if_absent and current is not None:
                raise CommitConflict(f"{self.locate(key)} appeared", stage=self._stage)
            if if_match is not None and (current is None or current.etag != if_match):
                raise CommitConflict(f"{self.locate(key)} changed", stage=self._stage)
        await in_thread(write_bytes_atomic, self._path(key), data, self.writer)
        return hashlib.sha256(data).hexdigest()

    async def copy_object(self, source: str, target: str) -> None:
        """Copy through a temp file beside ``target``, then rename it into place."""
        await in_thread(self._copy, self._path(source), self._path(target))

    def _copy(self, source: Path, target: Path) -> None:
        fd, temp = temp_beside(target, self.writer)
        try:
            with source.open("rb") as reader, os.fdopen(fd, "wb") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
                writer.flush()
                os.fsync(writer.fileno())
            os.replace(temp, target)
        except FileNotFoundError as exc:
            temp.unlink(missing_ok=True)
            raise LoadError(f"cannot copy {source} to {target}: {source} is missing", stage=self._stage) from exc
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        fsync_folder(target.parent)

    async def delete_object(self, key: str) -> None:
        """Remove the file, and its folders once they are empty."""
        path = self._path(key)
        path.unlink(missing_ok=True)
        _prune(path.parent, self.root)

    async def list_keys(self, prefix: str) -> list[str]:
        """Every file under ``prefix``, as keys; temp files are not keys."""
        base = self._path(prefix)
        if not base.is_dir():
            return []
        root = self.root
        return sorted(
            p.relative_to(root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not (p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX))
        )

    # -- the day lock: flock on <name>.lock, the record in <name>.json -------------------
    async def claim_lock(self, key: str) -> LockClaim:
        """``flock`` the day's lock file without waiting; a record found there belongs to a dead run."""
        record_path = self._path(key)
        lock_path = record_path.with_suffix(".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                stored = await self.get_object(key)
                record = LockRecord.from_bytes(stored.data) if stored else None
                holder = record.describe() if record else f"{lock_path} is locked"
                raise CommitConflict(holder, stage=self._stage) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # its holder removed it while we waited for it: take the new one
                os.close(fd)
                continue
            stored = await self.get_object(key)
            record = LockRecord.from_bytes(stored.data) if stored else None
            return LockClaim(key, fd, stale=record, stale_unreadable=stored is not None and record is None)
        raise CommitConflict(f"{lock_path} keeps changing hands", stage=self._stage)

    async def write_lock(self, claim: LockClaim, record: LockRecord) -> None:
        """Write the record atomically beside the lock file."""
        await in_thread(write_bytes_atomic, self._path(claim.key), record.to_bytes(), record.run_id)

    async def release_lock(self, claim: LockClaim, *, keep_record: bool = False) -> None:
        """Remove the record and the lock file while still holding the lock, then let go."""
        fd = claim.token
        try:
            if not keep_record:
                record_path = self._path(claim.key)
                record_path.unlink(missing_ok=True)
                # a record write cut short: while the lock is held nobody else writes this record
                for temp in record_path.parent.glob(f".{record_path.name}.*{TEMP_SUFFIX}"):
                    temp.unlink(missing_ok=True)
                record_path.with_suffix(".lock").unlink(missing_ok=True)
                _prune(record_path.parent, self.root)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- leftovers: temp files ----------------------------------------------------------
    async def leftovers(self) -> list[Leftover]:
        """Temp files in the lake's zones, with their run's id; old ones are older than ``lock_timeout``."""
        root = self.root
        base = root / self.prefix
        cutoff = time.time() - self.lock_timeout
        found = []
        for folder in ZONE_FOLDERS.values():
            zone = base / folder
            if not zone.is_dir():
                continue
            for path in zone.rglob(f".*{TEMP_SUFFIX}"):
                try:
                    old = path.stat().st_mtime < cutoff
                except FileNotFoundError:
                    continue
                key = path.relative_to(root).as_posix()
                found.append(Leftover(key, f"the temp file {path}", _temp_run(path.name), old))
        return found

    async def remove_leftover(self, leftover: Leftover) -> None:
        """Delete the temp file."""
        path = self._path(leftover.handle)
        path.unlink(missing_ok=True)
        _prune(path.parent, self.root)
