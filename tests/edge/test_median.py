"""The per-beat medians equal numpy's, value for value (the detector and ST rely on it)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge.signal.median import median, median_rows

_values = st.floats(-50.0, 50.0, allow_nan=False, width=64)


@given(hnp.arrays(np.float64, st.integers(1, 40), elements=_values))
@settings(max_examples=200, deadline=None)
def test_median_is_numpys(x: np.ndarray) -> None:
    assert median(x) == float(np.median(x))


@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 16), st.integers(1, 30)), elements=_values))
@settings(max_examples=200, deadline=None)
def test_median_rows_is_numpys(x: np.ndarray) -> None:
    np.testing.assert_array_equal(median_rows(x), np.median(x, axis=0))


def test_a_nan_gives_nan() -> None:
    assert np.isnan(median(np.array([1.0, np.nan, 3.0])))
