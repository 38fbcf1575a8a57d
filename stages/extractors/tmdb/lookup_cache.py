"""TMDB's lookups (``/3/configuration`` and the genre lists), kept on disk between runs.

TMDB asks clients to cache its configuration; the genre lists change about as rarely. A run that
finds them here, younger than ``max_age``, saves their requests: two of a movie feed's request
slots (57 ms at 35 requests a second), three with TV.

One small JSON file per TMDB server and language, in ``$PIPELINE_CACHE_DIR`` if it is set, else in
the user's cache folder (``$XDG_CACHE_HOME``, else ``~/.cache``) under ``tmdb-trending-pipeline/``::

    {"version": 1, "base_url": "https://api.themoviedb.org", "language": null,
     "documents": {"configuration": {"saved_at": 1796300000.0, "document": {...}}, "genre/movie": {...}}}

The file is read back as untrusted input: a document that is not the shape its endpoint answers
with, is older than ``max_age``, is dated in the future, or belongs to another server or language
is fetched again, as is everything in a file that cannot be read or parsed. The token is never
written here (the lookups do not hold it). A file that cannot be written costs a warning, never
the run. Writes replace the file atomically, so two runs at once leave one whole file or the other.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.datalake.files import write_text_atomic

logger = logging.getLogger(__name__)

VERSION = 1
FOLDER_NAME = "tmdb-trending-pipeline"
MAX_FILE_BYTES = 1 << 20
"""A lookups file is a few KiB; a larger one is not ours, and is not read."""


def default_folder() -> Path:
    """``$PIPELINE_CACHE_DIR``, else ``tmdb-trending-pipeline`` in ``$XDG_CACHE_HOME``, else in ``~/.cache``."""
    own = os.environ.get("PIPELINE_CACHE_DIR")
    if own:
        return Path(own)
    base = os.environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"  # the XDG rule: a relative value is ignored
    return root / FOLDER_NAME


class LookupCache:
    """The lookups file of one TMDB server and language; ``load`` it, ``fresh`` documents from it, ``save`` new ones."""

    def __init__(
        self,
        folder: Path,
        base_url: str,
        language: str | None,
        max_age: float,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base_url, self.language, self.max_age, self._clock = base_url, language, max_age, clock
        key = json.dumps([base_url, language]).encode()
        self.path = folder / f"lookups-{hashlib.sha256(key).hexdigest()[:16]}.json"
        self._entries: dict[str, dict[str, Any]] = {}

    def load(self) -> None:
        """Read the file, if there is one that parses and is this server's and language's; otherwise start empty."""
        self._entries = {}
        try:
            with self.path.open("rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise ValueError(f"over {MAX_FILE_BYTES} bytes")
            content = json.loads(data)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:  # unreadable, or not JSON: fetched again, and the file replaced
            logger.debug("lookup cache %s not used: %s", self.path, exc)
            return
        if not (
            isinstance(content, dict)
            and content.get("version") == VERSION
            and content.get("base_url") == self.base_url
            and content.get("language") == self.language
            and isinstance(content.get("documents"), dict)
        ):
            logger.debug("lookup cache %s not used: not this server's and language's", self.path)
            return
        self._entries = {
            name: entry
            for name, entry in content["documents"].items()
            if isinstance(name, str)
            and isinstance(entry, dict)
            and _is_timestamp(entry.get("saved_at"))
            and "document" in entry
        }

    def fresh(self, name: str, valid: Callable[[Any], bool]) -> Any | None:
        """The document ``name`` (``configuration``, ``genre/movie``) if it is here, valid and young enough."""
        entry = self._entries.get(name)
        if entry is None:
            return None
        age = self._clock() - entry["saved_at"]
        if not 0 <= age < self.max_age or not valid(entry["document"]):
            return None
        return entry["document"]

    def save(self, documents: Mapping[str, Any]) -> None:
        """Add ``documents``, fetched now, to the file (replaced atomically); a failure is logged as a warning."""
        now = self._clock()
        for name, document in documents.items():
            self._entries[name] = {"saved_at": now, "document": document}
        content = {"version": VERSION, "base_url": self.base_url, "language": self.language, "documents": self._entries}
        try:
            write_text_atomic(self.path, json.dumps(content, separators=(",", ":")))
        except (OSError, TypeError, ValueError) as exc:  # a folder that cannot be written, or not JSON
            logger.warning("TMDB lookups not cached in %s: %s", self.path.parent, exc)


def _is_timestamp(value: Any) -> bool:
    """Whether ``value`` could be a ``saved_at``: seconds since 1970, before the year 5138. Not ``true``, NaN or
    infinity, and no integer too large for a float (JSON allows ``1e400`` written out as digits)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e11
