"""The meter's key table against a Python dict, on a table small enough that keys collide and runs wrap."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from etbert.flows.key_table import EMPTY, KEY_WORDS, find, forget_slots, index_slots, key_hash, new_index

SLOT = np.dtype([("key", np.uint64, (KEY_WORDS,)), ("key_hash", np.uint64)])
KEYS = [tuple(np.uint64(w) for w in (k, k >> 1, 7, k * 3, 6 << 32 | k)) for k in range(12)]


def entry_of(index, slots, seed, key):
    h = np.uint64(key_hash(seed, *key))
    return index[find(index, slots, h, *key)], h


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, len(KEYS) - 1)), max_size=80),
       st.integers(0, 2**64 - 1), st.sampled_from([8, 16]))
def test_lookups_after_any_inserts_and_removals_match_a_dict(operations, seed, size):
    seed = np.uint64(seed)
    index = np.full(size, EMPTY, dtype=np.int64)  # at most size / 2 keys, as the meter keeps it
    slots = np.zeros(size // 2, dtype=SLOT)
    free = list(range(size // 2))
    model: dict[int, int] = {}
    for insert, k in operations:
        slot, h = entry_of(index, slots, seed, KEYS[k])
        assert slot == model.get(k, EMPTY)
        if insert and k not in model and free:
            slot = free.pop()
            slots[slot]["key"], slots[slot]["key_hash"] = KEYS[k], h
            index[find(index, slots, h, *KEYS[k])] = slot
            model[k] = slot
        elif not insert and k in model:
            forget_slots(index, slots, np.array([model[k]], dtype=np.int64))
            free.append(model.pop(k))
        for other, key in enumerate(KEYS):
            assert entry_of(index, slots, seed, key)[0] == model.get(other, EMPTY)
    # a rebuilt table finds the same keys
    rebuilt = np.full(size, EMPTY, dtype=np.int64)
    index_slots(rebuilt, slots, np.array(sorted(model.values()), dtype=np.int64))
    for other, key in enumerate(KEYS):
        assert entry_of(rebuilt, slots, seed, key)[0] == model.get(other, EMPTY)


def test_forgetting_a_slot_without_an_entry_changes_nothing():
    # a flow whose key a newer flow took over (cut by a timeout or a new SYN) has no entry of its own
    seed = np.uint64(3)
    index = new_index(4)
    slots = np.zeros(4, dtype=SLOT)
    h = np.uint64(key_hash(seed, *KEYS[0]))
    for slot in (0, 1):
        slots[slot]["key"], slots[slot]["key_hash"] = KEYS[0], h
    index[find(index, slots, h, *KEYS[0])] = 0
    index[find(index, slots, h, *KEYS[0])] = 1  # the newer flow takes the entry over
    forget_slots(index, slots, np.array([0], dtype=np.int64))
    assert entry_of(index, slots, seed, KEYS[0])[0] == 1
    assert (index != EMPTY).sum() == 1


def test_a_table_stays_at_most_half_full():
    assert len(new_index(0)) == 1024
    assert len(new_index(600)) == 2048
    assert len(new_index(5000)) >= 10000
