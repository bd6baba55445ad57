"""Array helpers shared by the stages."""

from __future__ import annotations

import numpy as np
import polars as pl


def dense_rank(values: np.ndarray) -> np.ndarray:
    """Each value's position among the distinct values in ascending order (``int32``): the inverse of
    ``np.unique(values, return_inverse=True)``, from polars' dense rank on every core.

    >>> dense_rank(np.array([7, 3, 7, 2**64 - 1], dtype=np.uint64)).tolist()
    [1, 0, 1, 2]
    """
    if len(values) == 0:
        return np.zeros(0, dtype=np.int32)
    rank = pl.Series(values).rank("dense").to_numpy().astype(np.int32)
    rank -= 1
    return rank


def sorted_unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)``, with the inverse as ``int32``, from polars' dense rank.

    The rank sorts on every core; ``np.unique`` argsorts on one. On the 20M normalised-text hashes of a
    30M-message world (2 cores) it took 2.2–2.4 s against ``np.unique``'s 7.3 s; on 10M skewed int64 keys
    with few distinct values (the link stage's level patterns) 0.8 s against 1.5 s. The distinct values
    come out in ascending order, so the numbering does not depend on the input's row order.

    >>> uniq, inverse = sorted_unique_inverse(np.array([7, 3, 7, 2**64 - 1], dtype=np.uint64))
    >>> uniq.tolist(), inverse.tolist()
    ([3, 7, 18446744073709551615], [1, 0, 1, 2])
    """
    inverse = dense_rank(values)
    uniq = np.empty(int(inverse.max()) + 1 if len(inverse) else 0, dtype=values.dtype)
    uniq[inverse] = values
    return uniq, inverse
