"""The compiled XXH64 against the reference implementation (the `xxhash` package)."""

from __future__ import annotations

import numpy as np
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from etbert.dataset.digest import SEEDS, xxh64, xxh64_range


# No deadline: the first example pays for compiling the loop on a fresh machine (a second or more).
@settings(deadline=None)
@given(st.binary(max_size=200), st.integers(0, 2**64 - 1))
def test_xxh64_equals_the_reference(data, seed):
    assert xxh64(data, seed) == xxhash.xxh64_intdigest(data, seed)


@settings(deadline=None)
@given(st.binary(max_size=200), st.integers(0, 200), st.integers(0, 200))
def test_xxh64_of_a_range_is_the_digest_of_its_bytes_alone(data, start, stop):
    """The compiled form hashes ``data[start:stop]`` within a larger buffer, as the flow digests do."""
    start, stop = sorted((min(start, len(data)), min(stop, len(data))))
    array = np.frombuffer(data, dtype=np.uint8)
    for seed in SEEDS:
        assert int(xxh64_range(array, start, stop, seed)) == xxhash.xxh64_intdigest(data[start:stop], int(seed))
