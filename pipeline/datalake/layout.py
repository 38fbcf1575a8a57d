"""Where a lake's objects live: the zones, the two key layouts, and run-scoped keys.

With the default ``monthly`` layout::

    _manifests/YYYY/MM/YYYY-MM-DD_<feed>.json                  the commit point: names the objects below
    _versions/YYYY/MM/YYYY-MM-DD_<feed>.run-<run_id>.csv       the day's cleaned file, never overwritten
    raw_data/YYYY/MM/YYYY-MM-DD_<feed>.run-<run_id>.jsonl.gz   every raw page of that run (append-only zone)
    cleaned_data/YYYY/MM/YYYY-MM-DD_<feed>.csv                 a published copy of the version, for direct readers
    cleaned_data/people/YYYY/MM/YYYY-MM-DD_people.csv          person feeds (another schema): a folder down, all zones
    _locks/YYYY-MM-DD_<media>_<window>.json                    while a run writes the day: who, and what it may leave

and with the ``hive`` layout the same objects sit in ``media_type=…/time_window=…/year=…/month=…/day=…``
partitions (``part-0.csv``, ``part-0.run-<run_id>.jsonl.gz``, ``manifest.json``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Literal

from pipeline.datalake import formats
from pipeline.errors import LoadError, OutsideLake
from pipeline.options import OptionError
from pipeline.stage import Feed

LayoutStyle = Literal["monthly", "hive"]
LAYOUTS: tuple[LayoutStyle, ...] = ("monthly", "hive")
ZONE_FOLDERS: dict[str, str] = {
    "cleaned": "cleaned_data",
    "raw": "raw_data",
    "manifest": "_manifests",
    "version": "_versions",
    "lock": "_locks",
}
RAW_SUFFIX = ".jsonl.gz"
PEOPLE_FOLDER = "people"
"""With the ``monthly`` layout, ``person`` feeds live one folder down: ``cleaned_data/people/YYYY/MM/...``."""

_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What the layout itself writes below a zone's root: dates, feed slugs, run tags, ``key=value`` partitions.
_KEY_SEGMENT = re.compile(r"^[A-Za-z0-9_=-][A-Za-z0-9_.=-]{0,254}$")
_RUN_TAG = re.compile(r"\.run-([A-Za-z0-9_-]{1,64})\.")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def validate_prefix(prefix: str, key: str = "prefix") -> str:
    """Check a lake prefix: no leading ``/``, no ``..``, no empty segments, no control character.

    Returns it without a trailing ``/``. A NUL is refused here, at config time: a path or key holding one fails
    only when the loader first touches it.
    """
    if not prefix:
        return ""
    control = _CONTROL.search(prefix)
    if control:
        raise OptionError(key, f"must not contain control characters (U+{ord(control.group()):04X}): {prefix!r}")
    if prefix.startswith("/"):
        raise OptionError(key, f"must not start with '/': {prefix!r}")
    trimmed = prefix[:-1] if prefix.endswith("/") else prefix
    segments = trimmed.split("/")
    if any(s == "" for s in segments):
        raise OptionError(key, f"must not contain empty segments: {prefix!r}")
    if any(s in (".", "..") for s in segments):
        raise OptionError(key, f"must not contain '.' or '..' segments: {prefix!r}")
    return trimmed


def run_of(key: str) -> str | None:
    """The run id in a run-scoped key (``….run-<id>.…``), or ``None``."""
    match = _RUN_TAG.search(key.rsplit("/", 1)[-1])
    return match.group(1) if match else None


@dataclasses.dataclass(frozen=True)
class Layout:
    """Maps a day and feed to the keys of its objects."""

    prefix: str = ""
    style: LayoutStyle = "monthly"
    format: formats.Format = "csv"

    @classmethod
    def for_options(cls, options: object) -> Layout:
        """The layout a loader's options ask for (``prefix``, and ``format``/``layout`` if it has them)."""
        prefix = getattr(options, "prefix", "") or ""
        return cls(prefix, getattr(options, "layout", "monthly"), getattr(options, "format", "csv"))

    def root(self, zone: str) -> str:
        """The folder key that holds every object of ``zone``, without a trailing ``/``."""
        folder = ZONE_FOLDERS[zone]
        return f"{self.prefix}/{folder}" if self.prefix else folder

    def confine(self, key: object, *zones: str) -> str:
        """``key`` if it lies inside one of ``zones`` of this lake, as this layout writes keys there.

        Keys read back from the lake (a manifest, a lock record) are untrusted: a hand-edited or hostile one
        could name an absolute path, climb out with ``..``, or point at another zone (a manifest whose version
        is the published file). Anything but plain segments below the zone's root raises ``OutsideLake``.
        """
        text = key if isinstance(key, str) else ""
        for zone in zones:
            root = self.root(zone) + "/"
            if text.startswith(root):
                segments = text[len(root) :].split("/")
                if all(_KEY_SEGMENT.match(s) and s not in (".", "..") for s in segments):
                    return text
        where = " or ".join(f"{ZONE_FOLDERS[z]}/" for z in zones)
        shown = key[:200] if isinstance(key, str) else type(key).__name__
        raise OutsideLake(f"{shown!r} is not a key inside the lake's {where}")

    def key(self, zone: str, day: dt.date, feed: Feed) -> str:
        """The key of ``zone`` (``cleaned``, ``manifest``, or the pre-protocol ``raw``) for ``day`` and ``feed``."""
        suffix = {"cleaned": formats.EXTENSIONS[self.format], "raw": RAW_SUFFIX, "manifest": ".json"}[zone]
        if self.style == "hive":
            partition = (
                f"media_type={feed.media_type}/time_window={feed.time_window}/year={day:%Y}/month={day:%m}/day={day:%d}"
            )
            name = "manifest.json" if zone == "manifest" else f"part-0{suffix}"
            return f"{self.root(zone)}/{partition}/{name}"
        # People have their own schema: their own folder, so that a query engine's titles table
        # (one location per month) never reads a people file.
        folder = f"{self.root(zone)}/{PEOPLE_FOLDER}" if feed.media_type == "person" else self.root(zone)
        return f"{folder}/{day:%Y}/{day:%m}/{day.isoformat()}_{feed.slug}{suffix}"

    def run_key(self, zone: Literal["raw", "version"], day: dt.date, feed: Feed, run_id: str) -> str:
        """The immutable key of one run's ``raw`` pages or cleaned ``version``."""
        if not _RUN_ID.match(run_id):
            raise LoadError(f"run id {run_id!r} cannot be part of a key (letters, digits, '-' and '_' only)")
        if zone == "raw":
            base, suffix = self.key("raw", day, feed), RAW_SUFFIX
        else:
            cleaned, suffix = self.key("cleaned", day, feed), formats.EXTENSIONS[self.format]
            base = self.root("version") + cleaned[len(self.root("cleaned")) :]
        return f"{base[: -len(suffix)]}.run-{run_id}{suffix}"

    def lock_key(self, day: dt.date, feed: Feed) -> str:
        """The key of the day's lock record."""
        return f"{self.root('lock')}/{day.isoformat()}_{feed.media_type}_{feed.time_window}.json"

    def keys(self, day: dt.date, feed: Feed, run_id: str | None = None) -> dict[str, str]:
        """What a reader meets: the cleaned key, the raw key (the run's, if given) and the manifest."""
        raw = self.run_key("raw", day, feed, run_id) if run_id else self.key("raw", day, feed)
        return {"cleaned": self.key("cleaned", day, feed), "raw": raw, "manifest": self.key("manifest", day, feed)}
