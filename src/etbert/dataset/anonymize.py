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

The work is vectorised over a whole Arrow batch of flows (`anonymize_batch`, `mask_identity_batch`): field
positions come from NumPy over the packets' bytes, and the variable parts (IPv4 and TCP options, IPv6
extension headers) are walked by loops bounded by the header sizes, each step over every packet at once.
The per-flow functions are one-row batches of the same code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from etbert.flows.arrays import lexsort_ints
from etbert.protocols import ipv4, ipv6, tcp, udp

POLICIES = ("strict", "seed-004", "none")
DEFAULT_POLICY = "strict"

IP_ADDR = "ip_addr"
IP_ID = "ip_id"
PORT = "port"
CHECKSUM = "checksum"
TCP_SEQ = "tcp_seq"
TCP_ACK = "tcp_ack"
TCP_SACK = "tcp_sack"
TCP_TIMESTAMP = "tcp_timestamp"
FLOW_LABEL = "flow_label"

KINDS = (IP_ADDR, IP_ID, PORT, CHECKSUM, TCP_SEQ, TCP_ACK, TCP_SACK, TCP_TIMESTAMP, FLOW_LABEL)  # index = code
RANDOMISED = frozenset({IP_ADDR, IP_ID, PORT})  # what seed-004 replaces
ZEROED = frozenset({CHECKSUM, TCP_TIMESTAMP})  # what strict adds as zeros
FLOW_LABEL_KEPT_BITS = 0xF0  # byte 1 of IPv6 holds 4 traffic-class bits before the flow label's first 4
SEQUENCE_MODULUS = 2**32
SEQUENCE_LEN = 4
MAX_FIELD_LEN = ipv6.ADDRESS_LEN  # the longest randomised field

Span = tuple[int, int, str]

_CODE = {kind: code for code, kind in enumerate(KINDS)}
_RANDOMISED_CODES = np.array([_CODE[kind] for kind in sorted(RANDOMISED)])
_SEQUENCE_CODES = np.array([_CODE[TCP_SEQ], _CODE[TCP_ACK], _CODE[TCP_SACK]])
_IPV6_EXTENSIONS = np.array(sorted(ipv6.GENERIC_EXTENSIONS | {ipv6.AUTHENTICATION, ipv6.FRAGMENT}))
_BINARY_LISTS = pa.list_(pa.binary())


# ----- per flow: one-row batches -------------------------------------------------------------------


def identity_fields(packet: bytes, l4_offset: int) -> list[Span]:
    """The identity spans present in one packet: (start, stop, kind), clipped to the bytes stored.

    The transport header counts only when ``l4_offset`` agrees with where the IP header chain says it
    starts (-1: no transport header, e.g. a non-first fragment). For a flow label span, only the low 4
    bits of its first byte belong to the label.
    """
    spans = _identity_spans(_Packets.of(*_one_flow([packet], [l4_offset])))
    return list(zip(spans.start.tolist(), spans.stop.tolist(), [KINDS[code] for code in spans.kind.tolist()]))


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
    spans = _identity_spans(packets)
    return packets.with_data(_masked(packets, spans, _SpanBytes.of(packets, spans)))


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
    if policy == "none":
        return packets.with_data(packets.data.copy())
    spans, bounds = _by_treatment(packets, _identity_spans(packets), policy)
    covered = _SpanBytes.of(packets, spans)
    return packets.with_data(_anonymized(packets, spans, covered, bounds, directions, seeds))


def anonymize_and_mask_batch(
    pkt_bytes: pa.ListArray,
    pkt_l4_offset: pa.ListArray,
    pkt_direction: pa.ListArray,
    policy: str,
    seeds: np.ndarray,
) -> tuple[pa.ListArray, pa.ListArray]:
    """`anonymize_batch` and `mask_identity_batch` of the same flows, finding their identity fields once."""
    packets, directions, seeds = _checked(pkt_bytes, pkt_l4_offset, pkt_direction, policy, seeds)
    spans, bounds = _by_treatment(packets, _identity_spans(packets), policy)
    covered = _SpanBytes.of(packets, spans)
    anonymized = _anonymized(packets, spans, covered, bounds, directions, seeds)
    return packets.with_data(anonymized), packets.with_data(_masked(packets, spans, covered))


def _checked(pkt_bytes, pkt_l4_offset, pkt_direction, policy, seeds):
    if policy not in POLICIES:
        raise ValueError(f"unknown anonymisation policy {policy!r}; choose one of {', '.join(POLICIES)}")
    packets = _Packets.of(pkt_bytes, pkt_l4_offset)
    directions = _packet_values(pkt_direction, len(packets.start), "directions")
    seeds = np.asarray(seeds, dtype=np.uint64)
    if len(seeds) != len(packets.list_offsets) - 1:
        raise ValueError(f"{len(packets.list_offsets) - 1} flows but {len(seeds)} seeds")
    return packets, directions, seeds


def _masked(packets: _Packets, spans: _Spans, covered: _SpanBytes) -> np.ndarray:
    out = packets.data.copy()
    _zero(out, spans, covered)
    return out


# What a policy does to a span; spans are put in this order (see `_by_treatment`).
RANDOMISE, RELATIVE, ZERO, KEEP = range(4)


def _by_treatment(packets: _Packets, spans: _Spans, policy: str) -> tuple[_Spans, np.ndarray]:
    """The spans grouped by what ``policy`` does to them (packet and start order kept inside each group),
    and where each group starts: spans ``bounds[t]:bounds[t + 1]`` get treatment t."""
    treatment = np.full(len(spans.kind), KEEP)
    if policy != "none":
        treatment[np.isin(spans.kind, _RANDOMISED_CODES)] = RANDOMISE
    if policy == "strict":
        treatment[treatment == KEEP] = ZERO
        treatment[_sequence_spans(packets, spans)] = RELATIVE
    order = np.argsort(treatment, kind="stable")
    return spans.take(order), np.searchsorted(treatment[order], np.arange(KEEP + 2))


def _anonymized(packets: _Packets, spans: _Spans, covered: _SpanBytes, bounds, directions, seeds) -> np.ndarray:
    out = packets.data.copy()
    randomise, relative, zero = (slice(bounds[t], bounds[t + 1]) for t in (RANDOMISE, RELATIVE, ZERO))
    _write_pseudonyms(out, packets, spans.take(randomise), covered.of_spans(randomise), seeds)
    _write_relative_sequence(out, packets, spans.take(relative), directions != 0)
    _zero(out, spans.take(zero), covered.of_spans(zero))
    return out


@dataclass(frozen=True)
class _Packets:
    """A batch's packets back to back: ``data[start[i] : start[i] + length[i]]`` is packet i of row flow[i]."""

    data: np.ndarray  # uint8
    start: np.ndarray  # int64
    length: np.ndarray  # int64
    flow: np.ndarray  # int64: the row each packet belongs to
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
            flow=np.repeat(np.arange(len(list_offsets) - 1), np.diff(list_offsets)),
            l4=_packet_values(pkt_l4_offset, count, "l4 offsets"),
            list_offsets=list_offsets,
        )

    def byte(self, packet: np.ndarray, at: np.ndarray) -> np.ndarray:
        """Byte ``at`` of each packet (int64); 0 where the packet is shorter."""
        inside = (at >= 0) & (at < self.length[packet])
        if not len(self.data):
            return np.zeros(len(packet), dtype=np.int64)
        return np.where(inside, self.data[np.where(inside, self.start[packet] + at, 0)], 0).astype(np.int64)

    def uint16(self, packet: np.ndarray, at: np.ndarray) -> np.ndarray:
        return self.byte(packet, at) << 8 | self.byte(packet, at + 1)

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


@dataclass(frozen=True)
class _Spans:
    """Identity spans of a batch, one row each, ordered by packet, then start: packet i's bytes
    ``start:stop`` hold a field of kind ``KINDS[kind]``. ``stop`` is clipped to the packet."""

    packet: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    kind: np.ndarray

    def take(self, rows: np.ndarray | slice) -> _Spans:
        return _Spans(self.packet[rows], self.start[rows], self.stop[rows], self.kind[rows])


class _SpanList:
    """Spans collected field by field, then clipped to the packets and put in order."""

    def __init__(self):
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []

    def add(self, packet: np.ndarray, start: np.ndarray, stop: np.ndarray, kind: str | np.ndarray) -> None:
        kinds = np.full(len(packet), _CODE[kind]) if isinstance(kind, str) else kind
        self.parts.append((packet, np.broadcast_to(start, packet.shape), np.broadcast_to(stop, packet.shape), kinds))

    def add_field(self, packet: np.ndarray, base: np.ndarray | int, field: slice, kind: str) -> None:
        self.add(packet, base + field.start, base + field.stop, kind)

    def spans(self, packets: _Packets) -> _Spans:
        packet, start, stop, kind = (np.concatenate([part[i] for part in self.parts]).astype(np.int64)
                                     for i in range(4))
        length = packets.length[packet]
        present = start < length
        order = lexsort_ints((start[present], packet[present]))
        return _Spans(packet[present][order], start[present][order], np.minimum(stop, length)[present][order],
                     kind[present][order])


def _identity_spans(packets: _Packets) -> _Spans:
    """Every identity span of every packet (see `identity_fields`)."""
    spans = _SpanList()
    count = len(packets.start)
    everyone = np.arange(count)
    version = packets.byte(everyone, np.zeros(count, dtype=np.int64)) >> 4
    version[packets.length == 0] = 0
    protocol = np.full(count, -1)
    transport = np.full(count, -1)
    _ipv4_fields(packets, np.flatnonzero(version == 4), spans, protocol, transport)
    _ipv6_fields(packets, np.flatnonzero(version == 6), spans, protocol, transport)
    agrees = (packets.l4 >= 0) & (packets.l4 == transport)
    _tcp_fields(packets, np.flatnonzero(agrees & (protocol == tcp.PROTOCOL)), spans)
    _udp_fields(packets, np.flatnonzero(agrees & (protocol == udp.PROTOCOL)), spans)
    return spans.spans(packets)


def _ipv4_fields(packets: _Packets, v4: np.ndarray, spans: _SpanList, protocol, transport) -> None:
    for field, kind in ((ipv4.IDENTIFICATION, IP_ID), (ipv4.CHECKSUM, CHECKSUM), (ipv4.SRC, IP_ADDR),
                        (ipv4.DST, IP_ADDR)):
        spans.add_field(v4, 0, field, kind)
    header_len = (packets.byte(v4, np.zeros(len(v4), dtype=np.int64)) & 0x0F) * 4
    length = packets.length[v4]
    # Route options carry the addresses of the hosts on the path.
    option_start = np.full(len(v4), ipv4.MIN_HEADER_LEN)
    packet, kind, start, end = _walk_options(packets, v4, option_start, np.minimum(header_len, length))
    route = np.isin(kind, list(ipv4.ROUTE_OPTIONS))
    _add_chunks(spans, packet[route], start[route] + ipv4.ROUTE_ADDRESSES_START, end[route], ipv4.ADDRESS_LEN,
                IP_ADDR)
    fragment_offset = packets.uint16(v4, np.full(len(v4), ipv4.FLAGS_FRAGMENT)) & ipv4.FRAGMENT_OFFSET_MASK
    later_fragment = (length >= ipv4.FLAGS_FRAGMENT + 2) & (fragment_offset > 0)
    whole = (length > ipv4.PROTOCOL) & (header_len >= ipv4.MIN_HEADER_LEN) & ~later_fragment
    protocol[v4[whole]] = packets.byte(v4[whole], np.full(whole.sum(), ipv4.PROTOCOL))
    transport[v4[whole]] = header_len[whole]


def _ipv6_fields(packets: _Packets, v6: np.ndarray, spans: _SpanList, protocol, transport) -> None:
    for field, kind in ((ipv6.FLOW_LABEL, FLOW_LABEL), (ipv6.SRC, IP_ADDR), (ipv6.DST, IP_ADDR)):
        spans.add_field(v6, 0, field, kind)
    # The extension chain, one header of every packet per step.
    packet = v6[packets.length[v6] >= ipv6.HEADER_LEN]
    kind = packets.byte(packet, np.full(len(packet), ipv6.NEXT_HEADER))
    at = np.full(len(packet), ipv6.HEADER_LEN)
    for walked in range(ipv6.MAX_EXTENSION_HEADERS + 1):
        extension = np.isin(kind, _IPV6_EXTENSIONS)
        protocol[packet[~extension]] = kind[~extension]
        transport[packet[~extension]] = at[~extension]
        packet, kind, at = packet[extension], kind[extension], at[extension]
        if walked == ipv6.MAX_EXTENSION_HEADERS:
            break  # too long a chain: no upper layer
        readable = at + ipv6.EXTENSION_LENGTH < packets.length[packet]
        packet, kind, at = packet[readable], kind[readable], at[readable]
        if not len(packet):
            break
        length_byte = packets.byte(packet, at + ipv6.EXTENSION_LENGTH)
        stop = at + np.where(kind == ipv6.FRAGMENT, ipv6.FRAGMENT_HEADER_LEN,
                             np.where(kind == ipv6.AUTHENTICATION, (length_byte + 2) * 4, (length_byte + 1) * 8))
        fragment = kind == ipv6.FRAGMENT
        spans.add_field(packet[fragment], at[fragment], ipv6.FRAGMENT_IDENTIFICATION, IP_ID)
        offset_present = at + ipv6.FRAGMENT_OFFSET + 2 <= packets.length[packet]
        later_fragment = fragment & offset_present & (packets.uint16(packet, at + ipv6.FRAGMENT_OFFSET) >> 3 > 0)
        next_kind = packets.byte(packet, at + ipv6.EXTENSION_NEXT_HEADER)
        packet, kind, at = packet[~later_fragment], next_kind[~later_fragment], stop[~later_fragment]


def _tcp_fields(packets: _Packets, packet: np.ndarray, spans: _SpanList) -> None:
    l4 = packets.l4[packet]
    for field, kind in ((tcp.SRC_PORT, PORT), (tcp.DST_PORT, PORT), (tcp.SEQ, TCP_SEQ), (tcp.ACK, TCP_ACK),
                        (tcp.CHECKSUM, CHECKSUM)):
        spans.add_field(packet, l4, field, kind)
    header_len = np.where(l4 + tcp.DATA_OFFSET < packets.length[packet],
                          (packets.byte(packet, l4 + tcp.DATA_OFFSET) >> 4) * 4, 0)
    stop = np.minimum(l4 + header_len, packets.length[packet])
    packet, kind, start, end = _walk_options(packets, packet, l4 + tcp.MIN_HEADER_LEN, stop)
    data = start + tcp.OPTION_DATA_START
    stamp = kind == tcp.OPTION_TIMESTAMP
    spans.add(packet[stamp], data[stamp], end[stamp], TCP_TIMESTAMP)
    sack = kind == tcp.OPTION_SACK
    _add_chunks(spans, packet[sack], data[sack], end[sack], tcp.SACK_EDGE_LEN, TCP_SACK)


def _udp_fields(packets: _Packets, packet: np.ndarray, spans: _SpanList) -> None:
    l4 = packets.l4[packet]
    for field, kind in ((udp.SRC_PORT, PORT), (udp.DST_PORT, PORT), (udp.CHECKSUM, CHECKSUM)):
        spans.add_field(packet, l4, field, kind)


def _walk_options(packets: _Packets, packet: np.ndarray, at: np.ndarray, stop: np.ndarray):
    """(packet, kind, offset, end) of each kind-length option in ``packet[at:stop]``, the rules of
    IPv4 and TCP options alike: one option of every packet per step, so at most 40 steps."""
    found = []
    walking = at < stop
    packet, at, stop = packet[walking], at[walking], stop[walking]
    while len(packet):
        kind = packets.byte(packet, at)
        length = packets.byte(packet, at + 1)
        nop = kind == ipv4.OPTION_NOP
        option = (kind != ipv4.OPTION_END) & ~nop & (at + 1 < stop) & (length >= 2)
        found.append((packet[option], kind[option], at[option], np.minimum(at + length, stop)[option]))
        at = np.where(nop, at + 1, at + length)
        walking = (nop | option) & (at < stop)
        packet, at, stop = packet[walking], at[walking], stop[walking]
    if not found:
        return (np.zeros(0, dtype=np.int64),) * 4
    return tuple(np.concatenate([step[i] for step in found]) for i in range(4))


def _add_chunks(spans: _SpanList, packet, start, stop, size: int, kind: str) -> None:
    """Spans of ``size`` bytes from ``start`` on, the last one clipped to ``stop``."""
    counts = np.maximum(-(-(stop - start) // size), 0)
    chunk = _rank_in_repeat(counts)
    packet, start, stop = (np.repeat(values, counts) for values in (packet, start, stop))
    at = start + chunk * size
    spans.add(packet, at, np.minimum(at + size, stop), kind)


def _rank_in_repeat(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each count, concatenated (the position inside ``np.repeat(x, counts)``)."""
    counts = np.asarray(counts, dtype=np.int64)
    firsts = np.cumsum(counts) - counts
    return np.arange(counts.sum()) - np.repeat(firsts, counts)


def _changes(*keys: np.ndarray) -> np.ndarray:
    """True where any key differs from the previous row (and at row 0): the starts of equal-key runs."""
    starts = np.zeros(len(keys[0]), dtype=bool)
    starts[:1] = True
    for key in keys:
        starts[1:] |= key[1:] != key[:-1]
    return starts


def _rank_after_starts(starts: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... restarting where ``starts`` is True."""
    index = np.arange(len(starts))
    return index - np.maximum.accumulate(np.where(starts, index, 0)) if len(starts) else index


@dataclass(frozen=True)
class _SpanBytes:
    """Every byte some spans cover: its span, its index inside the span, its position in the data."""

    span: np.ndarray
    index: np.ndarray
    position: np.ndarray

    @classmethod
    def of(cls, packets: _Packets, spans: _Spans) -> _SpanBytes:
        widths = np.maximum(spans.stop - spans.start, 0)
        span = np.repeat(np.arange(len(widths)), widths)
        index = _rank_in_repeat(widths)
        return cls(span, index, packets.start[spans.packet[span]] + spans.start[span] + index)

    def of_spans(self, spans: slice) -> _SpanBytes:
        """The bytes of a range of spans, numbered from its start as ``_Spans.take(spans)`` numbers them."""
        lo, hi = np.searchsorted(self.span, [spans.start, spans.stop])
        return _SpanBytes(self.span[lo:hi] - spans.start, self.index[lo:hi], self.position[lo:hi])


def _zero(out: np.ndarray, spans: _Spans, covered: _SpanBytes) -> None:
    if not (spans.kind == _CODE[FLOW_LABEL]).any():  # IPv4 only: no byte to keep half of
        out[covered.position] = 0
        return
    keep = np.where((spans.kind[covered.span] == _CODE[FLOW_LABEL]) & (covered.index == 0), FLOW_LABEL_KEPT_BITS, 0)
    out[covered.position] &= keep.astype(np.uint8)


# ----- pseudonyms -----------------------------------------------------------------------------------


def _write_pseudonyms(out: np.ndarray, packets: _Packets, spans: _Spans, covered: _SpanBytes, seeds: np.ndarray) -> None:
    """One random replacement per distinct (kind, value) in a flow (see the module docstring).

    Distinct values are numbered per flow and kind in order of first appearance, and replacement byte j
    of value n is drawn from (seed, kind, n, j) by a counter-based hash: the original bytes decide only
    which spans share a number, never what is drawn.
    """
    flow = packets.flow[spans.packet]
    width = spans.stop - spans.start
    span, index, position = covered.span, covered.index, covered.position
    # Values right-aligned, so that short fields make small sort keys (IPv4 and ports pack into one).
    value = np.zeros((len(width), MAX_FIELD_LEN), dtype=np.uint8)
    value.reshape(-1)[span * MAX_FIELD_LEN + (MAX_FIELD_LEN - width)[span] + index] = packets.data[position]
    high, low = value.view(">u8").T.astype(np.uint64)
    # One sort key for (flow, kind, width): kind < 16 and width <= 16 leave the flow the upper bits.
    group = (flow << 9) | (spans.kind << 5) | width
    # Stable sorts, so equal values stay in appearance order; fields of up to 8 bytes (all but IPv6
    # addresses) sort apart on one packed key. Groups differ between the parts, as widths do.
    narrow = width <= 8
    by_value = np.concatenate([np.flatnonzero(narrow)[lexsort_ints((low[narrow], group[narrow]))],
                               np.flatnonzero(~narrow)[lexsort_ints((low[~narrow], high[~narrow], group[~narrow]))]])
    new_value = _changes(*(key[by_value] for key in (group, high, low)))
    value_of_span = np.empty(len(width), dtype=np.int64)
    value_of_span[by_value] = np.cumsum(new_value) - 1
    first_span = by_value[new_value]
    in_appearance = lexsort_ints((first_span, spans.kind[first_span], flow[first_span]))
    group_starts = _changes(flow[first_span][in_appearance], spans.kind[first_span][in_appearance])
    number = np.empty(len(first_span), dtype=np.int64)
    number[in_appearance] = _rank_after_starts(group_starts)
    # Draw each distinct value's replacement once, a word per 8 bytes it needs, then gather its bytes.
    words = np.zeros((len(first_span), MAX_FIELD_LEN // 8), dtype="<u8")
    word_count = (width[first_span] + 7) // 8
    drawn_value = np.repeat(np.arange(len(first_span)), word_count)
    block = _rank_in_repeat(word_count)
    words[drawn_value, block] = _keyed_words(seeds[flow[first_span]][drawn_value], spans.kind[first_span][drawn_value],
                                             number[drawn_value], block)
    out[position] = words.view(np.uint8).reshape(-1)[value_of_span[span] * MAX_FIELD_LEN + index]


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a bijection of uint64 whose outputs look independent for nearby inputs."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _keyed_words(seed: np.ndarray, kind: np.ndarray, number: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Bytes ``8 * block`` to ``8 * block + 7`` (little-endian) of the random replacement ``number`` of
    ``kind``, from the seed alone."""
    counter = (kind.astype(np.uint64) << np.uint64(48)) | (number.astype(np.uint64) << np.uint64(4)) | block.astype(
        np.uint64)
    return _mix64(_mix64(seed ^ _GOLDEN) + counter * _GOLDEN)


# ----- relative sequence numbers --------------------------------------------------------------------


def _sequence_spans(packets: _Packets, spans: _Spans) -> np.ndarray:
    """Spans that hold a whole sequence number (cut ones are zeroed); an ack without the ACK flag
    carries no number and is zeroed too."""
    whole = np.isin(spans.kind, _SEQUENCE_CODES) & (spans.stop - spans.start == SEQUENCE_LEN)
    ack = spans.kind == _CODE[TCP_ACK]
    flags = packets.byte(spans.packet, packets.l4[spans.packet] + tcp.FLAGS)
    return whole & ~(ack & (flags & tcp.ACK_FLAG == 0))


def _write_relative_sequence(out: np.ndarray, packets: _Packets, spans: _Spans, server_to_client: np.ndarray) -> None:
    """TCP sequence numbers relative to each direction's first sequence number seen.

    seq counts from its own direction's first seq; ack (and SACK edges, which acknowledge the same
    stream) from the other direction's first seq, fixed at this direction's first ack. When the peer
    has not been seen yet (capture started mid-flow) that first ack itself becomes the base.
    """
    direction = server_to_client[spans.packet].astype(np.int64)
    stream = 2 * packets.flow[spans.packet] + direction  # (flow, direction)
    peer = stream ^ 1
    position = (packets.start[spans.packet] + spans.start)[:, None] + np.arange(SEQUENCE_LEN)
    shifts = 8 * np.arange(SEQUENCE_LEN - 1, -1, -1)
    value = (packets.data[position].astype(np.int64) << shifts).sum(axis=1)
    streams = 2 * (len(packets.list_offsets) - 1)
    is_seq = spans.kind == _CODE[TCP_SEQ]
    seq_base, seq_packet = _first_per_stream(stream[is_seq], value[is_seq], spans.packet[is_seq], streams)
    ack_first, ack_packet = _first_per_stream(stream[~is_seq], value[~is_seq], spans.packet[~is_seq], streams)
    ack_base = np.where(seq_packet[peer] < ack_packet[stream], seq_base[peer], ack_first[stream])
    relative = (value - np.where(is_seq, seq_base[stream], ack_base)) % SEQUENCE_MODULUS
    out[position] = (relative[:, None] >> shifts).astype(np.uint8)


def _first_per_stream(stream, value, packet, streams: int) -> tuple[np.ndarray, np.ndarray]:
    """Per stream: the first value (in packet order) and its packet; the packet is a maximum where none."""
    first_value = np.zeros(streams, dtype=np.int64)
    first_packet = np.full(streams, np.iinfo(np.int64).max)
    found, at = np.unique(stream, return_index=True)
    first_value[found] = value[at]
    first_packet[found] = packet[at]
    return first_value, first_packet
