"""The flow meter's open flows by direction-free 5-tuple: a hash table of slot numbers, compiled by numba.

The meter's per-packet loop (`etbert.flows.packet_loop`) looks every packet's key up here, so that no
per-batch grouping or Python dict stands between packets and their flows (on captures of one- and
two-packet flows those cost more than the loop itself).

The table is an array of slot numbers (``EMPTY`` where free) whose size is a power of two, kept at most
half full, and probed linearly. A key is five 64-bit words: the lower endpoint's address (two words),
the higher endpoint's address (two words), then protocol and both ports (`packed_ports`). Each slot
record holds its flow's key and hash (fields ``key`` and ``key_hash``), so a lookup compares against the
slot, and deleting an entry moves the later entries of its run back into the gap instead of leaving a
marker. The hash takes a seed drawn per meter, so that a capture cannot be crafted to make every key
land in one run.

`first_rows` uses the same table, probe and hash over an array of 16-byte keys, for duplicate removal.
"""

from __future__ import annotations

import os

import numpy as np

from etbert.compiled import compiled, compiled_inline
from etbert.flows.arrays import mix64

EMPTY = -1
KEY_WORDS = 5


def new_index(capacity: int) -> np.ndarray:
    """An empty table with room for ``capacity`` keys at most half full."""
    size = 1024
    while size < 2 * capacity:
        size *= 2
    return np.full(size, EMPTY, dtype=np.int64)


@compiled_inline
def packed_ports(protocol, lo_port, hi_port):
    return (np.uint64(protocol) << np.uint64(32)) | (np.uint64(lo_port) << np.uint64(16)) | np.uint64(hi_port)


@compiled_inline
def key_hash(seed, k0, k1, k2, k3, k4):
    return mix64(mix64(mix64(mix64(mix64(seed ^ k0) ^ k1) ^ k2) ^ k3) ^ k4)


@compiled_inline
def find(index, table, h, k0, k1, k2, k3, k4):
    """The position of the key's entry, or of the empty entry where it would go."""
    mask = np.uint64(len(index) - 1)
    at = h & mask
    while True:
        slot = index[at]
        if slot == EMPTY:
            return at
        s = table[slot]
        if (s.key_hash == h and s.key[0] == k0 and s.key[1] == k1 and s.key[2] == k2 and s.key[3] == k3
                and s.key[4] == k4):
            return at
        at = (at + np.uint64(1)) & mask


@compiled
def index_slots(index, table, slots):
    """Enter each slot under its key (keys must be distinct and not yet in the table)."""
    mask = np.uint64(len(index) - 1)
    for slot in slots:
        at = table[slot].key_hash & mask
        while index[at] != EMPTY:
            at = (at + np.uint64(1)) & mask
        index[at] = slot


@compiled
def forget_slots(index, table, slots):
    """Remove the entry of each slot that has one (a flow whose key a newer flow took over has none)."""
    mask = np.uint64(len(index) - 1)
    for slot in slots:
        at = table[slot].key_hash & mask
        while index[at] != EMPTY and index[at] != slot:
            at = (at + np.uint64(1)) & mask
        if index[at] == EMPTY:
            continue
        # Close the gap: move back each later entry of the run whose home is not between gap and entry.
        gap = at
        at = (at + np.uint64(1)) & mask
        while index[at] != EMPTY:
            home = table[index[at]].key_hash & mask
            if ((at - home) & mask) >= ((at - gap) & mask):
                index[gap] = index[at]
                gap = at
            at = (at + np.uint64(1)) & mask
        index[gap] = EMPTY


def first_rows(keys: np.ndarray) -> np.ndarray:
    """For each 16-byte key (``V16`` or ``S16``), the first row holding the same key.

    The same kind of table, holding row numbers of ``keys``; prepare's duplicate removal runs it over the
    flows' digests, where a sort-based or Arrow dictionary encoding took several times longer.
    """
    if keys.dtype.itemsize != 16:
        raise ValueError(f"keys must be 16 bytes wide, not {keys.dtype.itemsize}")
    words = np.ascontiguousarray(keys).view(np.uint64).reshape(len(keys), 2)
    out = np.empty(len(keys), dtype=np.int64)
    _first_rows(words, new_index(len(keys)), np.uint64(int.from_bytes(os.urandom(8), "little")), out)
    return out


@compiled
def _first_rows(words, index, seed, out):
    mask = np.uint64(len(index) - 1)
    zero = np.uint64(0)
    for row in range(len(words)):
        k0, k1 = words[row, 0], words[row, 1]
        at = key_hash(seed, k0, k1, zero, zero, zero) & mask
        while True:
            held = index[at]
            if held == EMPTY:
                index[at] = row
                out[row] = row
                break
            if words[held, 0] == k0 and words[held, 1] == k1:
                out[row] = held
                break
            at = (at + np.uint64(1)) & mask
