"""Array helpers: packed sorting must order exactly as np.lexsort, whatever the key widths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from etbert.flows.arrays import factorize, lexsort_ints

widths = st.sampled_from([1, 2, 8, 17, 32, 63])


@given(data=st.data(), rows=st.integers(0, 60), key_widths=st.lists(widths, min_size=1, max_size=4))
def test_lexsort_ints_orders_as_lexsort(data, rows, key_widths):
    keys = tuple(np.array(data.draw(st.lists(st.integers(0, 2**w - 1), min_size=rows, max_size=rows)),
                          dtype=np.uint64 if w == 63 else np.int64) for w in key_widths)
    assert lexsort_ints(keys).tolist() == np.lexsort(keys).tolist()


def test_lexsort_ints_refuses_negative_keys():
    with pytest.raises(ValueError):
        lexsort_ints((np.array([1, -1]),))


@given(st.lists(st.binary(min_size=3, max_size=3), max_size=40))
def test_factorize_gives_distinct_keys_in_order_of_appearance(values):
    keys = np.array(values, dtype="V3")
    distinct, codes = factorize(keys)
    first_seen = list(dict.fromkeys(values))
    assert distinct.tolist() == first_seen
    assert [first_seen[c] for c in codes.tolist()] == values
