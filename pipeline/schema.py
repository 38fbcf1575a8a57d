"""Alias of ``pipeline.datalake.schema``, where the cleaned schema now lives.

Kept because a third-party transformer written against 0.1 imports the schema from here
to produce the columns loaders expect; new code should import ``pipeline.datalake.schema``.
"""

from __future__ import annotations

from pipeline.datalake.schema import *  # noqa: F403
