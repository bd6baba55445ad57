"""Tests of the shared array helpers (reputation._arrays)."""

from __future__ import annotations

import numpy as np
import pytest

from reputation._arrays import dense_rank, sorted_unique_inverse


@pytest.mark.parametrize("size", [0, 1, 5_000])
def test_sorted_unique_inverse_equals_numpy_unique(size):
    """The parallel dedupe (template hashes, linkage level patterns) numbers values exactly as np.unique does: ascending
    distinct values (including those above 2**63, where a signed sort would misorder them), each input
    mapped to its value's position, whatever the input order."""
    rng = np.random.default_rng(size)
    distinct = rng.integers(0, 2**64 - 1, size=max(size // 3, 1), dtype=np.uint64, endpoint=True)
    values = distinct[rng.integers(0, len(distinct), size=size)]
    uniq, inverse = sorted_unique_inverse(values)
    expected_uniq, expected_inverse = np.unique(values, return_inverse=True)
    assert uniq.dtype == np.uint64 and inverse.dtype == np.int32
    assert np.array_equal(uniq, expected_uniq)
    assert np.array_equal(inverse, expected_inverse)
    assert np.array_equal(dense_rank(values), expected_inverse)
    if size > 1:  # the case that matters is in the data
        assert (values >= 2**63).any() and (values < 2**63).any()
