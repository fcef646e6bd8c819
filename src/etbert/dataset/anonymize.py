"""Anonymisation of stored packet bytes: the header fields that identify hosts, flows or capture moments.

Stored packets start at the IP header (the flow meter drops the link layer, so MAC addresses are never
stored) and may be cut short by the byte cap: every field is taken only as far as the bytes reach.

Policies:
  none      bytes unchanged.
  seed-004  the handshake-CNN paper's method: IP addresses, IP identification (IPv4 ID, IPv6 fragment
            identification) and TCP/UDP ports replaced by random bytes of the same length.
  strict    seed-004, plus: IPv4 header and TCP/UDP checksums zeroed (they encode the replaced fields);
            TCP seq/ack (and SACK edges) made relative per flow and direction; TCP timestamp values
            zeroed (host clock); IPv6 flow label zeroed (per-flow random value). The default.

Random replacements are drawn per flow from the seed, one per distinct original value (and kind), so a
flow stays self-consistent (the client's address is the same bytes in every packet, either direction).
They are drawn from the seed alone, never computed from the original values: the seed is published in
the manifest, and must reveal nothing. (A replaced byte therefore equals the original by chance, 1 in 256.)
seed-004 keeps the checksums, which are computed over the original fields; strict zeroes them.

The work runs over a whole Arrow batch of flows at once (`anonymize_batch`, `mask_identity_batch`,
`anonymize_and_digest_batch`): the packets' headers are walked and their fields rewritten by a compiled
loop (`etbert.dataset.identity_loop`).
The per-flow functions are one-row batches of the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from etbert.dataset import identity_loop
from etbert.dataset.digest import DIGEST

POLICIES = ("strict", "seed-004", "none")
DEFAULT_POLICY = "strict"

KINDS = identity_loop.KIND_NAMES  # index = the field's code in the compiled walk
IP_ADDR, IP_ID, PORT, CHECKSUM, TCP_SEQ, TCP_ACK, TCP_SACK, TCP_TIMESTAMP, FLOW_LABEL = KINDS

RANDOMISED = frozenset({IP_ADDR, IP_ID, PORT})  # what seed-004 replaces

Span = tuple[int, int, str]

_POLICY_CODE = {"strict": identity_loop.STRICT, "seed-004": identity_loop.SEED_004, "none": identity_loop.NONE}
_BINARY_LISTS = pa.list_(pa.binary())


# ----- per flow: one-row batches -------------------------------------------------------------------


def identity_fields(packet: bytes, l4_offset: int) -> list[Span]:
    """The identity spans present in one packet: (start, stop, kind), clipped to the bytes stored.

    The transport header counts only when ``l4_offset`` agrees with where the IP header chain says it
    starts (-1: no transport header, e.g. a non-first fragment). For a flow label span, only the low 4
    bits of its first byte belong to the label.
    """
    spans = np.empty((identity_loop.MAX_SPANS, 3), dtype=np.int64)
    count = identity_loop.packet_spans(np.frombuffer(bytes(packet), dtype=np.uint8), 0, len(packet), l4_offset, spans)
    return [(start, stop, KINDS[kind]) for start, stop, kind in spans[:count].tolist()]


def mask_identity(packets: list[bytes], l4_offsets: list[int]) -> list[bytes]:
    """Every identity span zeroed: the canonical form in which duplicate flows are found, whatever the policy."""
    return mask_identity_batch(*_one_flow(packets, l4_offsets))[0].as_py()


def anonymize_flow(
    packets: list[bytes],
    l4_offsets: list[int],
    directions: list[int],
    policy: str = DEFAULT_POLICY,
    seed: int = 0,
) -> list[bytes]:
    """The flow's packets with their identity fields replaced per ``policy`` (see the module docstring).

    Deterministic for a seed; lengths never change; bytes outside the identity spans never change.
    ``directions``: 0 client -> server, 1 server -> client.
    """
    pkt_bytes, pkt_l4_offset = _one_flow(packets, l4_offsets)
    if len(directions) != len(packets):
        raise ValueError(f"{len(packets)} packets but {len(directions)} directions")
    pkt_direction = pa.array([list(directions)], pa.list_(pa.int8()))
    seeds = np.array([seed % 2**64], dtype=np.uint64)
    return anonymize_batch(pkt_bytes, pkt_l4_offset, pkt_direction, policy, seeds)[0].as_py()


def _one_flow(packets: list[bytes], l4_offsets: list[int]) -> tuple[pa.ListArray, pa.ListArray]:
    if len(l4_offsets) != len(packets):
        raise ValueError(f"{len(packets)} packets but {len(l4_offsets)} l4 offsets")
    return pa.array([[bytes(p) for p in packets]], _BINARY_LISTS), pa.array([list(l4_offsets)], pa.list_(pa.int16()))


# ----- per batch ------------------------------------------------------------------------------------


def mask_identity_batch(pkt_bytes: pa.ListArray, pkt_l4_offset: pa.ListArray) -> pa.ListArray:
    """`mask_identity` of every flow (row) at once: list<binary> with the same list and packet lengths."""
    packets = _Packets.of(pkt_bytes, pkt_l4_offset)
    masked = packets.data.copy()
    _rewrite(packets, np.zeros(len(packets.start), dtype=np.int64), "none",
             np.zeros(len(packets.list_offsets) - 1, dtype=np.uint64), masked=masked)
    return packets.with_data(masked)


def anonymize_batch(
    pkt_bytes: pa.ListArray,
    pkt_l4_offset: pa.ListArray,
    pkt_direction: pa.ListArray,
    policy: str,
    seeds: np.ndarray,
) -> pa.ListArray:
    """`anonymize_flow` of every flow (row) at once, flow i drawing from ``seeds[i]`` (uint64).

    Returns list<binary> with the same list and packet lengths as ``pkt_bytes``.
    """
    packets, directions, seeds = _checked(pkt_bytes, pkt_l4_offset, pkt_direction, policy, seeds)
    return _anonymized(packets, directions, policy, seeds)


def anonymize_and_digest_batch(
    pkt_bytes: pa.ListArray,
    pkt_l4_offset: pa.ListArray,
    pkt_direction: pa.ListArray,
    policy: str,
    seeds: np.ndarray,
    flow_heads: np.ndarray,
    packet_heads: np.ndarray,
) -> tuple[pa.ListArray, np.ndarray]:
    """`anonymize_batch`, and per flow the digest (`etbert.dataset.digest.DIGEST`) of its masked form:
    of ``flow_heads[i]`` (uint8 rows, one per flow) then, per packet, ``packet_heads[j]`` (uint8 rows,
    one per packet) and the packet's `mask_identity` bytes. One walk of the headers does both, and the
    masked bytes are never written out.
    """
    packets, directions, seeds = _checked(pkt_bytes, pkt_l4_offset, pkt_direction, policy, seeds)
    flow_heads = np.ascontiguousarray(flow_heads, dtype=np.uint8)
    packet_heads = np.ascontiguousarray(packet_heads, dtype=np.uint8)
    if len(flow_heads) != len(seeds) or len(packet_heads) != len(packets.start):
        raise ValueError(f"{len(seeds)} flows and {len(packets.start)} packets, but {len(flow_heads)} flow heads "
                         f"and {len(packet_heads)} packet heads")
    digests = np.empty((len(seeds), 2), dtype=np.uint64)
    anonymized = _anonymized(packets, directions, policy, seeds, flow_heads=flow_heads, packet_heads=packet_heads,
                             digests=digests)
    return anonymized, digests.astype("<u8").view(DIGEST).reshape(-1)


def _checked(pkt_bytes, pkt_l4_offset, pkt_direction, policy, seeds):
    if policy not in POLICIES:
        raise ValueError(f"unknown anonymisation policy {policy!r}; choose one of {', '.join(POLICIES)}")
    packets = _Packets.of(pkt_bytes, pkt_l4_offset)
    directions = _packet_values(pkt_direction, len(packets.start), "directions")
    seeds = np.asarray(seeds, dtype=np.uint64)
    if len(seeds) != len(packets.list_offsets) - 1:
        raise ValueError(f"{len(packets.list_offsets) - 1} flows but {len(seeds)} seeds")
    return packets, directions, seeds


def _anonymized(packets: _Packets, directions, policy, seeds, **digest_outputs) -> pa.ListArray:
    """The packets under ``policy`` (under `none`, as they are: no copy), filling any digest outputs."""
    anonymized = packets.data.copy() if policy != "none" else _NOTHING
    if policy != "none" or digest_outputs:
        _rewrite(packets, directions, policy, seeds, anonymized=anonymized, **digest_outputs)
    return packets.with_data(anonymized) if policy != "none" else packets.as_list_array()


_NOTHING = np.zeros(0, dtype=np.uint8)
_NO_HEADS = np.zeros((0, 0), dtype=np.uint8)
_NO_DIGESTS = np.zeros((0, 2), dtype=np.uint64)


def _rewrite(packets: _Packets, directions: np.ndarray, policy: str, seeds: np.ndarray, *, anonymized=_NOTHING,
             masked=_NOTHING, flow_heads=_NO_HEADS, packet_heads=_NO_HEADS, digests=_NO_DIGESTS) -> None:
    """Run the compiled rewrite; each output given (see `identity_loop.rewrite_flows`) is filled in place."""
    identity_loop.rewrite_flows(packets.data, packets.start, packets.length, packets.l4, directions,
                                packets.list_offsets, seeds, _POLICY_CODE[policy], anonymized, masked, flow_heads,
                                packet_heads, digests)


@dataclass(frozen=True)
class _Packets:
    """A batch's packets back to back: ``data[start[i] : start[i] + length[i]]`` is packet i."""

    data: np.ndarray  # uint8
    start: np.ndarray  # int64
    length: np.ndarray  # int64
    l4: np.ndarray  # int64
    list_offsets: np.ndarray  # int64, rows into packets, from 0

    @classmethod
    def of(cls, pkt_bytes: pa.ListArray, pkt_l4_offset: pa.ListArray) -> _Packets:
        if not (pa.types.is_list(pkt_bytes.type) and pa.types.is_binary(pkt_bytes.type.value_type)):
            raise TypeError(f"packet bytes must be list<binary>, not {pkt_bytes.type}")
        list_offsets = np.asarray(pkt_bytes.offsets, dtype=np.int64)
        list_offsets = list_offsets - list_offsets[0]
        binary = pkt_bytes.flatten()
        _, offset_buffer, data_buffer = binary.buffers()
        count = len(binary)
        offsets = np.frombuffer(offset_buffer, dtype=np.int32)[binary.offset : binary.offset + count + 1]
        offsets = offsets.astype(np.int64)
        data = np.frombuffer(data_buffer or b"", dtype=np.uint8)[offsets[0] : offsets[-1]]
        return cls(
            data=data,
            start=offsets[:-1] - offsets[0],
            length=np.diff(offsets),
            l4=_packet_values(pkt_l4_offset, count, "l4 offsets"),
            list_offsets=list_offsets,
        )

    def as_list_array(self) -> pa.ListArray:
        return self.with_data(self.data)

    def with_data(self, data: np.ndarray) -> pa.ListArray:
        """The same packets with their bytes replaced by ``data`` (same length)."""
        offsets = np.append(self.start, len(data)).astype(np.int32)
        binary = pa.Array.from_buffers(pa.binary(), len(self.start), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
        return pa.ListArray.from_arrays(pa.array(self.list_offsets.astype(np.int32)), binary)


def _packet_values(lists: pa.ListArray, count: int, name: str) -> np.ndarray:
    values = np.asarray(lists.flatten().to_numpy(zero_copy_only=False), dtype=np.int64)
    if len(values) != count:
        raise ValueError(f"{count} packets but {len(values)} {name}")
    return values
