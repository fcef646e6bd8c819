"""Array helpers: packed sorting must order exactly as np.lexsort, whatever the key widths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etbert.dataset.split import count_pairs
from etbert.flows.arrays import distinct_strings, factorize, gather_ranges, lexsort_ints

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


@given(st.lists(st.sampled_from(["", "web", "bulk", "Tinba", "é-class", "web "]), max_size=60))
def test_distinct_strings_equal_np_unique(values):
    values = np.array(values, dtype=object)
    names, codes = distinct_strings(values)
    expected, inverse = np.unique(values.astype(str), return_inverse=True)
    assert names == expected.tolist() and codes.tolist() == inverse.tolist()


def test_count_pairs_counts_each_present_pair():
    labels = np.array(["b", "a", "b", "b", ""], dtype=object)
    splits = np.array(["test", "train", "train", "test", "train"], dtype=object)
    assert count_pairs(labels, splits) == {"": {"train": 1}, "a": {"train": 1}, "b": {"test": 2, "train": 1}}


@settings(deadline=None)  # the first example compiles the copy loop
@given(st.binary(max_size=200), st.lists(st.tuples(st.integers(0, 220), st.integers(0, 40)), max_size=20))
def test_gather_ranges_concatenates_the_ranges_and_refuses_ones_outside_the_buffer(data, ranges):
    buffer = np.frombuffer(data, dtype=np.uint8)
    starts = np.array([s for s, _ in ranges], dtype=np.int64)
    lengths = np.array([n for _, n in ranges], dtype=np.int64)
    if any(n and s + n > len(data) for s, n in ranges):
        with pytest.raises(ValueError, match="outside"):
            gather_ranges(buffer, starts, lengths)
        return
    joined, offsets = gather_ranges(buffer, starts, lengths)
    assert joined.tobytes() == b"".join(data[s : s + n] for s, n in ranges)
    assert offsets.tolist() == np.cumsum([0] + [n for _, n in ranges]).tolist()
