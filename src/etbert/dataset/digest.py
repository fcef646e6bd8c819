"""Fingerprints of byte ranges, to find exact duplicates: XXH64 under two seeds (128 bits), compiled by numba.

XXH64 is a published non-cryptographic hash (https://github.com/Cyan4973/xxHash, its spec), written
here from that spec and checked against the reference `xxhash` package in the tests. It is used only to
tell identical samples apart from different ones; nothing adversarial chooses the inputs. Two seeds
make an accidental collision between two different flows about as likely as one of a 128-bit hash.
Hashing flows inside compiled code costs a fraction of a Python call per flow to hashlib
(`etbert.dataset.identity_loop` digests each flow's masked form as it masks it).
"""

from __future__ import annotations

import numpy as np

from etbert.compiled import compiled, compiled_inline

SEEDS = (np.uint64(0), np.uint64(0x9E3779B97F4A7C15))
DIGEST = np.dtype((np.void, 16))  # the two 64-bit hashes, little-endian

_P1 = np.uint64(11400714785074694791)
_P2 = np.uint64(14029467366897019727)
_P3 = np.uint64(1609587929392839161)
_P4 = np.uint64(9650029242287828579)
_P5 = np.uint64(2870177450012600261)


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 of one byte string (for tests and single values)."""
    return int(xxh64_range(np.frombuffer(bytes(data), dtype=np.uint8), 0, len(data), np.uint64(seed)))


@compiled_inline
def _rotl(x, r):
    return (x << np.uint64(r)) | (x >> np.uint64(64 - r))


@compiled_inline
def _read8(data, at):
    """The 8 bytes at ``at`` as a little-endian unsigned integer.

    Unsigned indices: a signed one makes numba check for negative indices, and that check alone kept
    LLVM from merging the byte loads (several times slower).
    """
    at = np.uint64(at)
    return (np.uint64(data[at]) | (np.uint64(data[at + np.uint64(1)]) << np.uint64(8))
            | (np.uint64(data[at + np.uint64(2)]) << np.uint64(16))
            | (np.uint64(data[at + np.uint64(3)]) << np.uint64(24))
            | (np.uint64(data[at + np.uint64(4)]) << np.uint64(32))
            | (np.uint64(data[at + np.uint64(5)]) << np.uint64(40))
            | (np.uint64(data[at + np.uint64(6)]) << np.uint64(48))
            | (np.uint64(data[at + np.uint64(7)]) << np.uint64(56)))


@compiled_inline
def _read4(data, at):
    """The 4 bytes at ``at`` as a little-endian unsigned integer."""
    at = np.uint64(at)
    return (np.uint64(data[at]) | (np.uint64(data[at + np.uint64(1)]) << np.uint64(8))
            | (np.uint64(data[at + np.uint64(2)]) << np.uint64(16))
            | (np.uint64(data[at + np.uint64(3)]) << np.uint64(24)))


@compiled_inline
def _round(acc, lane):
    return _rotl(acc + lane * _P2, 31) * _P1


@compiled_inline
def _merge(acc, value):
    return (acc ^ _round(np.uint64(0), value)) * _P1 + _P4


@compiled
def xxh64_range(data, start, stop, seed):
    """XXH64 of ``data[start:stop]`` under ``seed`` (uint64), for compiled callers."""
    at = start
    length = stop - start
    if length >= 32:
        v1 = seed + _P1 + _P2
        v2 = seed + _P2
        v3 = seed
        v4 = seed - _P1
        while at + 32 <= stop:
            v1 = _round(v1, _read8(data, at))
            v2 = _round(v2, _read8(data, at + 8))
            v3 = _round(v3, _read8(data, at + 16))
            v4 = _round(v4, _read8(data, at + 24))
            at += 32
        h = _rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)
        h = _merge(h, v1)
        h = _merge(h, v2)
        h = _merge(h, v3)
        h = _merge(h, v4)
    else:
        h = seed + _P5
    h += np.uint64(length)
    while at + 8 <= stop:
        h ^= _round(np.uint64(0), _read8(data, at))
        h = _rotl(h, 27) * _P1 + _P4
        at += 8
    if at + 4 <= stop:
        h ^= _read4(data, at) * _P1
        h = _rotl(h, 23) * _P2 + _P3
        at += 4
    while at < stop:
        h ^= np.uint64(data[at]) * _P5
        h = _rotl(h, 11) * _P1
        at += 1
    h ^= h >> np.uint64(33)
    h *= _P2
    h ^= h >> np.uint64(29)
    h *= _P3
    h ^= h >> np.uint64(32)
    return h
