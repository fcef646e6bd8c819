"""Array helpers against their plain NumPy or Python equivalents."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etbert.dataset.split import count_pairs
from etbert.flows.arrays import distinct_strings, factorize, gather_ranges, grouped_order


@settings(deadline=None)  # the first example may pay for compiling the loop
@given(st.integers(1, 6).flatmap(lambda count: st.tuples(st.just(count),
                                                        st.lists(st.integers(0, count - 1), max_size=60))))
def test_grouped_order_is_a_stable_sort_by_group(case):
    count, groups = case
    groups = np.array(groups, dtype=np.int64)
    order, counts = grouped_order(groups, count)
    assert order.tolist() == np.argsort(groups, kind="stable").tolist()
    assert counts.tolist() == np.bincount(groups, minlength=count).tolist()


@pytest.mark.parametrize("groups", [[0, 3], [1, -1]])
def test_grouped_order_refuses_groups_out_of_range(groups):
    with pytest.raises(ValueError):
        grouped_order(np.array(groups), 3)


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
