"""Duplicate removal, class limits and train/val/test splits over plain per-flow arrays.

Every function takes one entry per flow and returns a mask or an array of the same length plus a
report dataclass (for the manifest). Randomness is seeded per class (from the seed and the class name),
so one class's sample or split does not change when another class is added or removed.

Unlabelled flows: callers pass only labelled rows to `apply_class_limits`, and split unlabelled rows in
a call of their own (as one class, label ""), so they never shift the class strata.

Labels and captures may be given as arrays of strings or as `Coded` values (sorted names plus each row's
index among them): `prepare` passes codes, because comparing and hashing hundreds of thousands of Python
strings cost more than the decisions themselves.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from etbert.flows.arrays import distinct_strings, factorize, grouped_order
from etbert.flows.key_table import first_rows

SPLITS = ("train", "val", "test")
SPLIT_METHODS = ("flow", "capture", "time")
FRACTION_TOLERANCE = 1e-6
MIN_ROWS_FOR_TEST = 3  # a class this large always gets a test row (and a val row when val is wanted)


@dataclass(frozen=True)
class Coded:
    """Strings as their sorted distinct names and each row's index among them."""

    names: list[str]
    codes: np.ndarray  # int64, one per row

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, rows) -> Coded:
        return Coded(self.names, self.codes[rows])

    def code_of(self, name: str) -> int:
        """The code of ``name``, or -1 (which no row holds) when it is absent."""
        return self.names.index(name) if name in self.names else -1

    @staticmethod
    def concatenate(parts: list[Coded]) -> Coded:
        """The rows of ``parts`` one after another, over the union of their names."""
        names = sorted(set().union(*(part.names for part in parts)))
        position = {name: i for i, name in enumerate(names)}
        codes = [np.array([position[name] for name in part.names], dtype=np.int64)[part.codes] for part in parts]
        return Coded(names, np.concatenate([np.zeros(0, dtype=np.int64)] + codes))


def coded(values) -> Coded:
    """``values`` as a `Coded` (strings are encoded; a `Coded` is returned as it is)."""
    if isinstance(values, Coded):
        return values
    return Coded(*distinct_strings(np.asarray(values, dtype=object)))


@dataclass
class DuplicateReport:
    """Rows whose identity-free key equals an earlier row's; the first of each group is kept."""

    rows: int
    duplicates: int
    label_conflicts: int  # duplicates whose label differs from the kept row's
    conflicts_by_label: dict[str, int] = field(default_factory=dict)  # dropped row's label -> count


@dataclass
class ClassLimitReport:
    max_per_class: int | None
    min_per_class: int | None
    kept: int
    removed: int
    dropped_classes: dict[str, int] = field(default_factory=dict)  # below the minimum: label -> rows
    capped_classes: dict[str, int] = field(default_factory=dict)  # above the cap: label -> rows before


@dataclass
class SplitReport:
    method: str
    fractions: tuple[float, float, float]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # label -> split -> rows
    captures: dict[str, int] = field(default_factory=dict)  # split -> captures with rows in it
    warnings: list[str] = field(default_factory=list)


def duplicate_mask(keys, labels=None) -> tuple[np.ndarray, DuplicateReport]:
    """True for every row whose key equals an earlier row's (the first is kept).

    ``keys``: bytes per row, as a list or a NumPy array of fixed-width bytes (``V`` or ``S`` dtype).
    """
    first_row = _first_row_of_key(keys)
    duplicate = first_row != np.arange(len(first_row))
    conflicts: dict[str, int] = {}
    if labels is not None and duplicate.any():
        labels = coded(labels)
        rows = np.flatnonzero(duplicate)
        conflicting = labels.codes[rows][labels.codes[rows] != labels.codes[first_row[rows]]]
        counts = np.bincount(conflicting, minlength=len(labels.names))
        conflicts = {name: int(counts[i]) for i, name in enumerate(labels.names) if counts[i]}
    report = DuplicateReport(len(first_row), int(duplicate.sum()), sum(conflicts.values()), conflicts)
    return duplicate, report


def _first_row_of_key(keys) -> np.ndarray:
    """For each row, the first row with the same key (hash-based: a compiled table for prepare's 16-byte
    digests, Arrow's dictionary encoding for other keys)."""
    if isinstance(keys, np.ndarray) and keys.dtype.kind in "VS" and keys.dtype.itemsize == 16:
        return first_rows(keys)
    if isinstance(keys, np.ndarray) and keys.dtype.kind in "VS" and keys.dtype.itemsize:
        _, codes = factorize(keys)
    else:
        codes = pa.array(list(keys), pa.binary()).dictionary_encode().indices.to_numpy().astype(np.int64)
    if not len(codes):
        return np.zeros(0, dtype=np.int64)
    # Codes are numbered in order of first appearance, so a row holds a new code exactly where its code
    # exceeds every code before it: no sort needed.
    highest_before = np.maximum.accumulate(np.concatenate([[-1], codes[:-1]]))
    return np.flatnonzero(codes > highest_before)[codes]


def apply_class_limits(
    labels, max_per_class: int | None, min_per_class: int | None, seed: int = 0
) -> tuple[np.ndarray, ClassLimitReport]:
    """Keep mask: classes with fewer than ``min_per_class`` rows dropped whole; classes above
    ``max_per_class`` subsampled at random (seeded). The minimum looks at the rows before the cap."""
    if max_per_class is not None and max_per_class < 1:
        raise ValueError("max_per_class must be at least 1")
    if min_per_class is not None and max_per_class is not None and min_per_class > max_per_class:
        raise ValueError(f"min_per_class ({min_per_class}) is above max_per_class ({max_per_class})")
    labels = coded(labels)
    keep = np.ones(len(labels), dtype=bool)
    dropped, capped = {}, {}
    for label, rows in _rows_per_class(labels).items():
        if min_per_class is not None and len(rows) < min_per_class:
            keep[rows] = False
            dropped[label] = len(rows)
        elif max_per_class is not None and len(rows) > max_per_class:
            chosen = _class_rng(seed, label, "limit").choice(len(rows), max_per_class, replace=False)
            keep[rows] = False
            keep[rows[chosen]] = True
            capped[label] = len(rows)
    kept = int(keep.sum())
    return keep, ClassLimitReport(max_per_class, min_per_class, kept, len(labels) - kept, dropped, capped)


def assign_splits(
    labels, captures, start_times, method: str = "flow", fractions=(0.8, 0.1, 0.1), seed: int = 0
) -> tuple[np.ndarray, SplitReport]:
    """"train" / "val" / "test" per row (object array), as `split_indices` decides them."""
    split_index, report = split_indices(labels, captures, start_times, method, fractions, seed)
    return np.array(SPLITS, dtype=object)[split_index], report


def split_indices(
    labels, captures, start_times, method: str = "flow", fractions=(0.8, 0.1, 0.1), seed: int = 0
) -> tuple[np.ndarray, SplitReport]:
    """Each row's split as an index into SPLITS, stratified by label.

    flow     rows (flows) shuffled within each class and cut by the fractions.
    capture  whole captures per split: each capture goes with its majority class, and each class's
             captures are dealt (largest first) to the split furthest below its target share of rows.
    time     within each class, earliest rows train, then val, then test: no test flow of a class
             started before any of its train flows.
    """
    if method not in SPLIT_METHODS:
        raise ValueError(f"unknown split method {method!r}; choose one of {', '.join(SPLIT_METHODS)}")
    fractions = _check_fractions(fractions)
    labels = coded(labels)
    captures = coded(captures)
    start_times = np.asarray(start_times, dtype=np.float64)
    if not len(labels) == len(captures) == len(start_times):
        raise ValueError("labels, captures and start_times must have one entry per row")
    report = SplitReport(method, fractions)
    split_index = np.zeros(len(labels), dtype=np.int64)
    if method == "capture":
        _split_by_capture(labels, captures, fractions, seed, split_index, report)
    else:
        for label, rows in _rows_per_class(labels).items():
            if method == "time":
                ordered = rows[np.argsort(start_times[rows], kind="stable")]
            else:
                ordered = rows[_class_rng(seed, label, "split").permutation(len(rows))]
            split_index[ordered] = np.repeat(np.arange(len(SPLITS)), _split_sizes(len(rows), fractions))
    _count(labels, captures, split_index, report)
    return split_index, report


def _split_by_capture(labels, captures, fractions, seed, split_index, report: SplitReport) -> None:
    rows_of_capture = _rows_per_class(captures)
    majority: dict[str, list[str]] = {}  # class -> captures it leads
    for capture, rows in rows_of_capture.items():
        counts = np.bincount(labels.codes[rows], minlength=len(labels.names))
        majority.setdefault(labels.names[int(np.argmax(counts))], []).append(capture)  # ties: the first name
    wanted = [i for i, fraction in enumerate(fractions) if fraction > 0]
    for label in sorted(majority):
        names = sorted(majority[label])
        names = [names[i] for i in _class_rng(seed, label, "split").permutation(len(names))]
        names.sort(key=lambda name: -len(rows_of_capture[name]))  # stable: ties keep the seeded order
        total = sum(len(rows_of_capture[name]) for name in names)
        placed_rows = np.zeros(len(SPLITS))
        placed_captures = np.zeros(len(SPLITS), dtype=np.int64)
        for position, name in enumerate(names):
            empty = [i for i in wanted if placed_captures[i] == 0]
            # Once only as many captures remain as splits lack one, they go to those splits.
            candidates = empty if len(names) - position <= len(empty) else wanted
            deficit = [fractions[i] * total - placed_rows[i] for i in candidates]
            chosen = candidates[int(np.argmax(deficit))]
            split_index[rows_of_capture[name]] = chosen
            placed_rows[chosen] += len(rows_of_capture[name])
            placed_captures[chosen] += 1
        if len(names) < len(wanted):
            missing = [SPLITS[i] for i in wanted if placed_captures[i] == 0]
            report.warnings.append(
                f"class {label or '(unlabelled)'!r} has {len(names)} capture(s), fewer than the {len(wanted)} splits: "
                f"none of its captures is in {'/'.join(missing)}"
            )


def _split_sizes(n: int, fractions) -> np.ndarray:
    """Rows per split for a class of n rows: largest remainders, then at least one test row (and one
    val row when val is wanted) for classes of MIN_ROWS_FOR_TEST rows or more, taken from train."""
    exact = np.asarray(fractions) * n
    sizes = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - sizes), kind="stable")[: n - sizes.sum()]:
        sizes[i] += 1
    if n >= MIN_ROWS_FOR_TEST:
        for i in (2, 1):
            if fractions[i] > 0 and sizes[i] == 0:
                donor = int(np.argmax(sizes))
                sizes[donor] -= 1
                sizes[i] += 1
    return sizes


def _check_fractions(fractions) -> tuple[float, float, float]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != len(SPLITS) or min(fractions) < 0 or abs(sum(fractions) - 1) > FRACTION_TOLERANCE:
        raise ValueError(f"split fractions must be three non-negative numbers (train, val, test) summing to 1, "
                         f"got {fractions}")
    if fractions[0] == 0:
        raise ValueError("the train fraction must be above 0")
    return fractions


def _rows_per_class(values: Coded) -> dict:
    """Row indices of each distinct value present, in sorted value order."""
    order, counts = grouped_order(values.codes, len(values.names))
    rows = np.split(order, np.cumsum(counts)[:-1])
    return {name: rows[i] for i, name in enumerate(values.names) if counts[i]}


def count_pairs(firsts, seconds) -> dict[str, dict[str, int]]:
    """How many rows hold each (first, second) pair of strings present: {first: {second: count}}, sorted."""
    firsts, seconds = coded(firsts), coded(seconds)
    width = len(seconds.names)
    counts = np.bincount(firsts.codes * width + seconds.codes, minlength=len(firsts.names) * width)
    counts = counts.reshape(len(firsts.names), width)
    return {name: {other: int(counts[i, j]) for j, other in enumerate(seconds.names) if counts[i, j]}
            for i, name in enumerate(firsts.names) if counts[i].any()}


def _class_rng(seed: int, label: str, purpose: str) -> np.random.Generator:
    """A generator for one class and purpose that depends on nothing else."""
    digest = hashlib.blake2b(f"{purpose}\0{label}".encode(), digest_size=8).digest()
    return np.random.default_rng([seed % 2**64, int.from_bytes(digest, "little")])  # any int seed, even negative


_SORTED_SPLITS = sorted(SPLITS)
_SORTED_SPLIT_OF = np.array([_SORTED_SPLITS.index(split) for split in SPLITS])


def coded_splits(split_index: np.ndarray) -> Coded:
    """Rows' indices into SPLITS as a `Coded` (whose names are sorted)."""
    return Coded(_SORTED_SPLITS, _SORTED_SPLIT_OF[split_index])


def _count(labels, captures, split_index, report: SplitReport) -> None:
    """Rows per class and split, and captures per split (split_index: rows' indices into SPLITS)."""
    report.counts.update(count_pairs(labels, coded_splits(split_index)))
    for i, split in enumerate(SPLITS):
        report.captures[split] = int(np.count_nonzero(np.bincount(captures.codes[split_index == i],
                                                                  minlength=len(captures.names))))
