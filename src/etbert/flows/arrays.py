"""Vectorised array helpers shared by the meter and the dataset stages: grouping keys and strings,
ordering rows by group, gathering byte ranges out of a buffer, and a 64-bit mixer for compiled hashing."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from etbert.compiled import compiled, compiled_inline


def factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a 1-D array of fixed-width keys (``V`` or ``S`` dtype), in order of first
    appearance, and each key's index among them.

    Arrow's hash-based dictionary encoding: about 10x faster than sorting wide keys with np.unique.
    """
    keys = np.ascontiguousarray(keys)
    encoded = pa.Array.from_buffers(pa.binary(keys.dtype.itemsize), len(keys), [None, pa.py_buffer(keys)])
    encoded = encoded.dictionary_encode()
    distinct = encoded.dictionary
    data = np.frombuffer(distinct.buffers()[1] or b"", dtype=keys.dtype)
    return data[distinct.offset : distinct.offset + len(distinct)], encoded.indices.to_numpy().astype(np.int64)


def distinct_strings(values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The distinct strings of an array (object or str dtype), sorted, and each value's index among them.

    Arrow's hash encoding: np.unique sorts an object array of Python strings several times slower.
    """
    encoded = pa.array(values, pa.string()).dictionary_encode()
    names = encoded.dictionary.to_pylist()
    order = np.argsort(np.array(names, dtype=object)) if names else np.zeros(0, dtype=np.int64)
    rank = np.empty(len(names), dtype=np.int64)
    rank[order] = np.arange(len(names))
    return [names[i] for i in order], rank[encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)]


def grouped_order(groups: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """A stable order of the rows by group (``groups``: integers in [0, count)), and the rows per group.

    A counting sort: one pass over the rows, where a comparison sort took several.
    """
    groups = np.asarray(groups, dtype=np.int64)
    counts = np.bincount(groups, minlength=count)  # raises for a negative group
    if len(counts) != count:
        raise ValueError(f"groups must be below {count}")
    order = np.empty(len(groups), dtype=np.int64)
    _place_by_group(groups, range_offsets(counts), order)
    return order, counts


@compiled
def _place_by_group(groups, next_row, order):
    for i in range(len(groups)):
        order[next_row[groups[i]]] = i
        next_row[groups[i]] += 1


def gather_ranges(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate ``buffer[s : s + n]`` for every (s, n); returns the bytes and their start offsets in them."""
    offsets = range_offsets(lengths)
    out = np.empty(offsets[-1], dtype=np.uint8)
    copy_ranges(buffer, starts, lengths, out, offsets)
    return out, offsets


def range_offsets(lengths: np.ndarray) -> np.ndarray:
    """Where each range starts when ranges of ``lengths`` are put back to back, and where the last ends."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def copy_ranges(buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray, target: np.ndarray,
                target_starts: np.ndarray) -> None:
    """``target[t : t + n] = buffer[s : s + n]`` for every (s, n, t), in one compiled loop."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    target_starts = np.asarray(target_starts, dtype=np.int64)
    used = lengths > 0  # an empty range may start anywhere
    if np.any(lengths < 0) or np.any(used & ((starts < 0) | (starts + lengths > len(buffer)))) or np.any(
            used & ((target_starts[: len(lengths)] < 0) | (target_starts[: len(lengths)] + lengths > len(target)))):
        raise ValueError("a range runs outside its buffer")
    _copy_ranges(np.ascontiguousarray(buffer, dtype=np.uint8), starts, lengths, target, target_starts)


@compiled
def _copy_ranges(buffer, starts, lengths, target, target_starts):
    for i in range(len(starts)):
        copy_range(buffer, starts[i], target, target_starts[i], lengths[i])


@compiled_inline
def copy_range(source, start, target, at, count):
    """``target[at:at + count] = source[start:start + count]`` inside compiled code (unchecked bounds),
    with unsigned indices: numba checks signed ones for being negative, and that check kept LLVM from
    turning the loop into a block copy (several times slower)."""
    source_at, target_at = np.uint64(start), np.uint64(at)
    for j in range(np.uint64(count)):
        target[target_at + j] = source[source_at + j]


_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


@compiled_inline
def mix64(x):
    """SplitMix64's finaliser: a bijection of uint64 whose outputs look independent for nearby inputs
    (the flow table's key hash, anonymisation's keyed replacement values)."""
    x = (x ^ (x >> np.uint64(30))) * _MIX_1
    x = (x ^ (x >> np.uint64(27))) * _MIX_2
    return x ^ (x >> np.uint64(31))
