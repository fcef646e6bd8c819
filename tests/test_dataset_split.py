"""Duplicate removal, class limits and splits over plain per-flow arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etbert.dataset.split import (SPLIT_METHODS, SPLITS, Coded, apply_class_limits, assign_splits, coded,
                                  duplicate_mask, split_indices)


def dataset(seed=0):
    """Three classes of different sizes spread over captures of uneven sizes, random start times."""
    rng = np.random.default_rng(seed)
    labels, captures = [], []
    for label, sizes in {"chat": [50, 30, 20, 20, 10, 5, 5], "email": [200, 100, 40, 40, 20],
                         "video": [7, 3, 2, 1]}.items():
        for i, size in enumerate(sizes):
            labels += [label] * size
            captures += [f"{label}/{i}.pcap"] * size
    order = rng.permutation(len(labels))
    labels = np.array(labels, dtype=object)[order]
    captures = np.array(captures, dtype=object)[order]
    return labels, captures, rng.uniform(0, 1e6, len(labels))


# ----- duplicates ------------------------------------------------------------------------------------


def test_duplicates_keep_the_first_and_count_label_conflicts():
    keys = [b"a", b"b", b"a", b"c", b"b", b"a", b"\x00a", b"a\x00"]
    labels = ["x", "y", "x", "z", "q", "w", "x", "x"]
    mask, report = duplicate_mask(keys, labels)
    assert mask.tolist() == [False, False, True, False, True, True, False, False]
    assert (report.rows, report.duplicates, report.label_conflicts) == (8, 3, 2)
    assert report.conflicts_by_label == {"q": 1, "w": 1}


def test_duplicates_without_labels_and_empty():
    mask, report = duplicate_mask([b"k", b"k"])
    assert mask.tolist() == [False, True] and report.label_conflicts == 0
    mask, report = duplicate_mask([], [])
    assert mask.shape == (0,) and report.duplicates == 0


@settings(deadline=None)  # the first example compiles the table
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=40))
def test_duplicates_match_a_dictionary_of_first_rows(values):
    keys = np.array(values, dtype=np.uint64).reshape(-1, 2).view("V16").reshape(-1)  # keys sharing either half
    first_row = {}
    expected = [first_row.setdefault(v, i) != i for i, v in enumerate(values)]
    assert duplicate_mask(keys)[0].tolist() == expected


# ----- codes ---------------------------------------------------------------------------------------------


def test_coded_values_concatenate_over_the_union_of_names():
    first, second, empty = coded(["web", "", "web"]), coded(["mail", "web"]), coded([])
    assert first.names == ["", "web"] and first.codes.tolist() == [1, 0, 1]
    joined = Coded.concatenate([first, empty, second])
    assert joined.names == ["", "mail", "web"]
    assert [joined.names[c] for c in joined.codes] == ["web", "", "web", "mail", "web"]
    assert joined.code_of("mail") == 1 and joined.code_of("video") == -1
    assert joined[[0, 3]].codes.tolist() == [2, 1] and len(joined[[0, 3]]) == 2


@pytest.mark.parametrize("method", SPLIT_METHODS)
def test_decisions_on_codes_equal_those_on_strings(method):
    labels, captures, times = dataset(seed=3)
    keep, limits = apply_class_limits(labels, 40, 10, seed=1)
    keep_coded, limits_coded = apply_class_limits(coded(labels), 40, 10, seed=1)
    assert (keep == keep_coded).all() and limits == limits_coded
    # a Coded whose names include a class with no rows here, as a subset of a larger table has
    rows = np.flatnonzero(labels != "video")
    sub_labels, sub_captures = coded(labels)[rows], coded(captures)[rows]
    assert "video" in sub_labels.names
    names, report = assign_splits(labels[rows], captures[rows], times[rows], method, seed=2)
    index, report_coded = split_indices(sub_labels, sub_captures, times[rows], method, seed=2)
    assert (np.array(SPLITS, dtype=object)[index] == names).all() and report == report_coded
    assert "video" not in report_coded.counts
    keys = np.array([bytes([i % 7]) * 16 for i in range(len(labels))], dtype="V16")
    assert duplicate_mask(keys, labels)[1] == duplicate_mask(keys, coded(labels))[1]


# ----- class limits ----------------------------------------------------------------------------------


def test_class_limits_cap_and_minimum():
    labels = np.array(["a"] * 100 + ["b"] * 10 + ["c"] * 3, dtype=object)
    keep, report = apply_class_limits(labels, max_per_class=20, min_per_class=5, seed=1)
    kept = dict(zip(*np.unique(labels[keep], return_counts=True)))
    assert kept == {"a": 20, "b": 10}
    assert report.dropped_classes == {"c": 3} and report.capped_classes == {"a": 100}
    assert (report.kept, report.removed) == (30, 83)
    again, _ = apply_class_limits(labels, 20, 5, seed=1)
    other, _ = apply_class_limits(labels, 20, 5, seed=2)
    assert (again == keep).all() and not (other == keep).all()


def test_class_sample_does_not_depend_on_other_classes():
    labels = np.array(["a"] * 50 + ["b"] * 50, dtype=object)
    keep, _ = apply_class_limits(labels, 10, None, seed=3)
    alone, _ = apply_class_limits(labels[:50], 10, None, seed=3)
    assert (keep[:50] == alone).all()


def test_no_limits_keep_everything_and_bad_limits_raise():
    keep, report = apply_class_limits(np.array(["a", "b"], dtype=object), None, None)
    assert keep.all() and report.removed == 0
    with pytest.raises(ValueError, match="max_per_class must be at least 1"):
        apply_class_limits(["a"], 0, None)
    with pytest.raises(ValueError, match="above max_per_class"):
        apply_class_limits(["a"], 5, 10)


# ----- splits ----------------------------------------------------------------------------------------


def split_counts(labels, splits):
    return {(label, split): int(((labels == label) & (splits == split)).sum())
            for label in set(labels) for split in SPLITS}


def test_flow_split_is_stratified_within_one_row():
    labels, captures, times = dataset()
    splits, report = assign_splits(labels, captures, times, "flow", (0.8, 0.1, 0.1), seed=0)
    for label in set(labels):
        n = (labels == label).sum()
        for split, fraction in zip(SPLITS, (0.8, 0.1, 0.1)):
            assert abs(((labels == label) & (splits == split)).sum() - fraction * n) <= 1
    assert report.counts == {label: {s: c for (l, s), c in split_counts(labels, splits).items() if l == label and c}
                             for label in set(labels)}


@pytest.mark.parametrize("n, expected", [(1, [1, 0, 0]), (2, [2, 0, 0]), (3, [1, 1, 1]), (4, [2, 1, 1]),
                                         (10, [8, 1, 1]), (11, [9, 1, 1])])
def test_small_classes_get_a_test_row_from_three_rows(n, expected):
    labels = np.array(["a"] * n, dtype=object)
    splits, _ = assign_splits(labels, labels, np.zeros(n), "flow", seed=0)
    assert [int((splits == s).sum()) for s in SPLITS] == expected


def test_no_val_rows_when_val_fraction_is_zero():
    labels = np.array(["a"] * 10, dtype=object)
    splits, _ = assign_splits(labels, labels, np.zeros(10), "flow", (0.9, 0.0, 0.1), seed=0)
    assert [int((splits == s).sum()) for s in SPLITS] == [9, 0, 1]


@pytest.mark.parametrize("method", SPLIT_METHODS)
def test_splits_are_reproducible_and_seeded(method):
    labels, captures, times = dataset()
    first, _ = assign_splits(labels, captures, times, method, seed=7)
    again, _ = assign_splits(labels, captures, times, method, seed=7)
    assert (first == again).all()
    assert set(first) <= set(SPLITS)
    if method != "time":  # time order decides, not the seed
        assert any((assign_splits(labels, captures, times, method, seed=s)[0] != first).any() for s in (8, 9, 10))


def test_class_split_does_not_depend_on_other_classes():
    labels, captures, times = dataset()
    splits, _ = assign_splits(labels, captures, times, "flow", seed=4)
    chat = labels == "chat"
    alone, _ = assign_splits(labels[chat], captures[chat], times[chat], "flow", seed=4)
    assert (splits[chat] == alone).all()


def test_capture_split_keeps_captures_whole_and_near_the_fractions():
    labels, captures, times = dataset()
    splits, report = assign_splits(labels, captures, times, "capture", seed=0)
    for capture in set(captures):
        assert len(set(splits[captures == capture])) == 1, f"{capture} crosses splits"
    # chat and email have enough captures: every split gets some, train gets the most rows
    for label in ("chat", "email"):
        counts = [((labels == label) & (splits == s)).sum() for s in SPLITS]
        assert all(counts) and counts[0] > counts[1] + counts[2]
    # video has 4 captures of 7, 3, 2, 1 rows: the biggest goes to train, val and test get one each
    video = {s: sorted(set(captures[(labels == "video") & (splits == s)])) for s in SPLITS}
    assert video["train"][0] == "video/0.pcap" and len(video["val"]) == len(video["test"]) == 1
    assert report.warnings == [] and sum(report.captures.values()) == 16


def test_capture_split_warns_for_classes_with_fewer_captures_than_splits():
    labels = np.array(["solo"] * 10 + ["pair"] * 6 + ["many"] * 9, dtype=object)
    captures = np.array(["s.pcap"] * 10 + ["p1"] * 4 + ["p2"] * 2 + [f"m{i}" for i in range(9)], dtype=object)
    splits, report = assign_splits(labels, captures, np.zeros(len(labels)), "capture", seed=0)
    assert set(splits[labels == "solo"]) == {"train"}
    assert set(splits[captures == "p1"]) == {"train"} and set(splits[captures == "p2"]) in ({"val"}, {"test"})
    assert len(report.warnings) == 2
    assert "class 'pair' has 2 capture(s), fewer than the 3 splits" in report.warnings[0]
    assert "class 'solo' has 1 capture(s)" in report.warnings[1] and "val/test" in report.warnings[1]


def test_capture_with_mixed_labels_follows_its_majority_class():
    labels = np.array(["a", "a", "b"] + ["b"] * 6, dtype=object)
    captures = np.array(["mixed"] * 3 + [f"b{i}" for i in range(6)], dtype=object)
    splits, report = assign_splits(labels, captures, np.zeros(len(labels)), "capture", seed=0)
    assert len(set(splits[captures == "mixed"])) == 1
    assert sum(report.counts["b"].values()) == 7


def test_time_split_orders_each_class_by_start_time():
    labels, captures, times = dataset()
    splits, _ = assign_splits(labels, captures, times, "time", seed=0)
    for label in set(labels):
        of = labels == label
        train, val, test = (times[of & (splits == s)] for s in SPLITS)
        assert train.max() <= val.min() <= val.max() <= test.min()
        n = of.sum()
        assert abs(len(train) - 0.8 * n) <= 1 and len(test) >= 1


def test_time_split_ties_keep_test_no_earlier_than_train():
    labels = np.array(["a"] * 10, dtype=object)
    times = np.array([5.0, 1.0, 5.0, 5.0, 2.0, 5.0, 5.0, 3.0, 5.0, 5.0])
    splits, _ = assign_splits(labels, labels, times, "time", seed=0)
    assert times[splits == "test"].min() >= times[splits == "train"].max()
    assert set(times[splits == "train"]) >= {1.0, 2.0, 3.0}


def test_bad_arguments():
    one = np.array(["a"], dtype=object)
    with pytest.raises(ValueError, match="unknown split method 'random'; choose one of flow, capture, time"):
        assign_splits(one, one, [0.0], "random")
    with pytest.raises(ValueError, match="summing to 1"):
        assign_splits(one, one, [0.0], "flow", (0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="three non-negative"):
        assign_splits(one, one, [0.0], "flow", (1.1, -0.1, 0.0))
    with pytest.raises(ValueError, match="train fraction"):
        assign_splits(one, one, [0.0], "flow", (0.0, 0.5, 0.5))
    with pytest.raises(ValueError, match="one entry per row"):
        assign_splits(one, one, [0.0, 1.0], "flow")


def test_empty_input():
    splits, report = assign_splits([], [], [], "capture")
    assert splits.shape == (0,) and report.counts == {}
