"""The compiled XXH64 against the reference implementation (the `xxhash` package)."""

from __future__ import annotations

import numpy as np
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from etbert.dataset.digest import SEEDS, digest_ranges, xxh64


# No deadline: the first example pays for compiling the loop on a fresh machine (a second or more).
@settings(deadline=None)
@given(st.binary(max_size=200), st.integers(0, 2**64 - 1))
def test_xxh64_equals_the_reference(data, seed):
    assert xxh64(data, seed) == xxhash.xxh64_intdigest(data, seed)


@settings(deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=12))
def test_digest_of_each_range_is_both_seeds_of_its_bytes(pieces):
    data = np.frombuffer(b"".join(pieces), dtype=np.uint8)
    ends = np.cumsum([0] + [len(piece) for piece in pieces])
    digests = digest_ranges(data, ends)
    assert len(digests) == len(pieces)
    for piece, digest in zip(pieces, digests.tolist()):
        assert digest == b"".join(xxhash.xxh64_intdigest(piece, int(seed)).to_bytes(8, "little") for seed in SEEDS)
