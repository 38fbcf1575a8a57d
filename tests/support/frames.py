"""A cheap exact check that two frames are the same, for tests that compare many frames (hypothesis examples)."""

from __future__ import annotations

import pandas as pd


def assert_same_frame(left: pd.DataFrame, right: pd.DataFrame) -> None:
    """``pd.testing.assert_frame_equal(left, right, check_exact=True)``, decided at a twentieth of its cost.

    ``DataFrame.equals`` compares the values (NaN equal to NaN, floats exactly) and each column's dtype in about
    0.3 ms; ``assert_frame_equal`` takes 5 ms for a 16-column frame of the lake's schema, walking it column by
    column. The labels, their names and the index type are compared here too. Only frames that differ pay for
    pandas' detailed message, and a difference ``assert_frame_equal`` would let through still fails.
    """
    same = (
        left.equals(right)
        and list(left.columns) == list(right.columns)
        and list(left.dtypes) == list(right.dtypes)
        and type(left.index) is type(right.index)
        and left.index.names == right.index.names
        and left.columns.names == right.columns.names
    )
    if not same:
        pd.testing.assert_frame_equal(left, right, check_exact=True)
        raise AssertionError(f"the frames differ (pandas' own comparison passes):\n{left!r}\n{right!r}")
