"""Anonymisation's per-packet work, compiled by numba (`etbert.compiled`): find the identity fields of
each stored packet by walking its headers, then mask them, replace them or make them relative, flow by
flow; and, for duplicate removal, digest each flow's masked form without writing it out.

`etbert.dataset.anonymize` holds the policies, the public functions and their documentation; this
module only walks bytes. Every field is taken only as far as the stored bytes reach, and a byte read
past a packet's end reads as 0, as a cut packet would leave a parser in doubt.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from etbert.compiled import compiled, compiled_inline
from etbert.dataset.digest import SEEDS, xxh64_range
from etbert.flows.arrays import copy_range, mix64
from etbert.protocols import ipv4, ipv6, tcp, udp

# Field kinds: their names (anonymize's public ones) and, by position, their codes here.
KIND_NAMES = ("ip_addr", "ip_id", "port", "checksum", "tcp_seq", "tcp_ack", "tcp_sack", "tcp_timestamp",
              "flow_label")
IP_ADDR, IP_ID, PORT, CHECKSUM, TCP_SEQ, TCP_ACK, TCP_SACK, TCP_TIMESTAMP, FLOW_LABEL = range(len(KIND_NAMES))
# What a policy does to the fields it does not replace (anonymize.POLICIES in that order, plus masking).
STRICT, SEED_004, NONE = range(3)

MAX_SPANS = 64  # per packet; the headers allow about 30 (40 bytes of IPv4 options, 40 of TCP options)
FLOW_LABEL_KEPT_BITS = 0xF0  # byte 1 of IPv6 holds 4 traffic-class bits before the flow label's first 4
SEQUENCE_LEN = 4

_V4_ID, _V4_CHECKSUM = ipv4.IDENTIFICATION.start, ipv4.CHECKSUM.start
_V4_SRC, _V4_DST = ipv4.SRC.start, ipv4.DST.start
_V6_SRC, _V6_DST = ipv6.SRC.start, ipv6.DST.start
_V6_FRAGMENT_ID = ipv6.FRAGMENT_IDENTIFICATION.start
_TCP_SEQ, _TCP_ACK, _TCP_CHECKSUM = tcp.SEQ.start, tcp.ACK.start, tcp.CHECKSUM.start
_UDP_CHECKSUM = udp.CHECKSUM.start
_ROUTE_OPTIONS = np.array(sorted(ipv4.ROUTE_OPTIONS), dtype=np.int64)
_V6_EXTENSIONS = np.array(sorted(ipv6.GENERIC_EXTENSIONS | {ipv6.AUTHENTICATION, ipv6.FRAGMENT}), dtype=np.int64)

_NEVER = np.iinfo(np.int64).max  # a packet index no span has
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@compiled_inline
def _byte(data, start, length, at):
    return np.int64(data[start + at]) if 0 <= at < length else np.int64(0)


@compiled_inline
def _add(spans, count, start, stop, kind, length):
    """Add the span [start, stop) clipped to the packet, if any of it is there; returns the new count."""
    if start < length and count < MAX_SPANS:
        spans[count, 0] = start
        spans[count, 1] = min(stop, length)
        spans[count, 2] = kind
        count += 1
    return count


@compiled_inline
def _add_chunks(spans, count, start, stop, size, kind, length):
    at = start
    while at < stop:
        count = _add(spans, count, at, min(at + size, stop), kind, length)
        at += size
    return count


@compiled_inline
def _options(data, start, length, at, stop, spans, count, route_kind, route_start, route_size, route_field,
             stamp_kind, sack_kind):
    """Walk kind-length options (IPv4 and TCP alike) in [at, stop), adding the identity spans they hold."""
    while at < stop:
        kind = _byte(data, start, length, at)
        size = _byte(data, start, length, at + 1)
        nop = kind == ipv4.OPTION_NOP
        option = kind != ipv4.OPTION_END and not nop and at + 1 < stop and size >= 2
        if option:
            end = min(at + size, stop)
            if route_kind and (kind == _ROUTE_OPTIONS[0] or kind == _ROUTE_OPTIONS[1] or kind == _ROUTE_OPTIONS[2]):
                count = _add_chunks(spans, count, at + route_start, end, route_size, route_field, length)
            elif stamp_kind and kind == tcp.OPTION_TIMESTAMP:
                count = _add(spans, count, at + tcp.OPTION_DATA_START, end, TCP_TIMESTAMP, length)
            elif sack_kind and kind == tcp.OPTION_SACK:
                count = _add_chunks(spans, count, at + tcp.OPTION_DATA_START, end, tcp.SACK_EDGE_LEN, TCP_SACK, length)
        if not (nop or option):
            break
        at = at + 1 if nop else at + size
    return count


@compiled_inline
def packet_spans(data, start, length, l4, spans):
    """The identity spans of the packet ``data[start:start + length]``, in byte order, into ``spans``
    (rows of start, stop, kind); returns how many. ``l4``: where the meter found the transport header
    (-1: none); the transport fields count only where the IP header chain agrees."""
    count = 0
    version = _byte(data, start, length, 0) >> 4 if length > 0 else 0
    protocol = -1
    transport = -1
    if version == 4:
        count = _add(spans, count, _V4_ID, _V4_ID + 2, IP_ID, length)
        count = _add(spans, count, _V4_CHECKSUM, _V4_CHECKSUM + 2, CHECKSUM, length)
        count = _add(spans, count, _V4_SRC, _V4_SRC + 4, IP_ADDR, length)
        count = _add(spans, count, _V4_DST, _V4_DST + 4, IP_ADDR, length)
        header_len = (_byte(data, start, length, 0) & 0x0F) * 4
        count = _options(data, start, length, ipv4.MIN_HEADER_LEN, min(header_len, length), spans, count,
                         True, ipv4.ROUTE_ADDRESSES_START, ipv4.ADDRESS_LEN, IP_ADDR, False, False)
        offset = ((_byte(data, start, length, ipv4.FLAGS_FRAGMENT) << 8 | _byte(data, start, length,
                   ipv4.FLAGS_FRAGMENT + 1)) & ipv4.FRAGMENT_OFFSET_MASK)
        later_fragment = length >= ipv4.FLAGS_FRAGMENT + 2 and offset > 0
        if length > ipv4.PROTOCOL and header_len >= ipv4.MIN_HEADER_LEN and not later_fragment:
            protocol = _byte(data, start, length, ipv4.PROTOCOL)
            transport = header_len
    elif version == 6:
        count = _add(spans, count, ipv6.FLOW_LABEL.start, ipv6.FLOW_LABEL.stop, FLOW_LABEL, length)
        count = _add(spans, count, _V6_SRC, _V6_SRC + 16, IP_ADDR, length)
        count = _add(spans, count, _V6_DST, _V6_DST + 16, IP_ADDR, length)
        if length >= ipv6.HEADER_LEN:
            kind = _byte(data, start, length, ipv6.NEXT_HEADER)
            at = ipv6.HEADER_LEN
            for walked in range(ipv6.MAX_EXTENSION_HEADERS + 1):
                extension = False
                for known in _V6_EXTENSIONS:
                    extension = extension or kind == known
                if not extension:
                    protocol, transport = kind, at
                    break
                if walked == ipv6.MAX_EXTENSION_HEADERS or not at + ipv6.EXTENSION_LENGTH < length:
                    break
                size = _byte(data, start, length, at + ipv6.EXTENSION_LENGTH)
                if kind == ipv6.FRAGMENT:
                    stop = at + ipv6.FRAGMENT_HEADER_LEN
                    count = _add(spans, count, at + _V6_FRAGMENT_ID, at + _V6_FRAGMENT_ID + 4, IP_ID, length)
                    if at + ipv6.FRAGMENT_OFFSET + 2 <= length and (
                            (_byte(data, start, length, at + ipv6.FRAGMENT_OFFSET) << 8
                             | _byte(data, start, length, at + ipv6.FRAGMENT_OFFSET + 1)) >> 3) > 0:
                        break  # a later fragment: no upper-layer header here
                elif kind == ipv6.AUTHENTICATION:
                    stop = at + (size + 2) * 4
                else:
                    stop = at + (size + 1) * 8
                kind = _byte(data, start, length, at + ipv6.EXTENSION_NEXT_HEADER)
                at = stop
    if l4 < 0 or l4 != transport:
        return count
    if protocol == tcp.PROTOCOL:
        count = _add(spans, count, l4, l4 + 2, PORT, length)
        count = _add(spans, count, l4 + 2, l4 + 4, PORT, length)
        count = _add(spans, count, l4 + _TCP_SEQ, l4 + _TCP_SEQ + 4, TCP_SEQ, length)
        count = _add(spans, count, l4 + _TCP_ACK, l4 + _TCP_ACK + 4, TCP_ACK, length)
        count = _add(spans, count, l4 + _TCP_CHECKSUM, l4 + _TCP_CHECKSUM + 2, CHECKSUM, length)
        header_len = (_byte(data, start, length, l4 + tcp.DATA_OFFSET) >> 4) * 4 if l4 + tcp.DATA_OFFSET < length else 0
        count = _options(data, start, length, l4 + tcp.MIN_HEADER_LEN, min(l4 + header_len, length), spans, count,
                         False, 0, 0, 0, True, True)
    elif protocol == udp.PROTOCOL:
        count = _add(spans, count, l4, l4 + 2, PORT, length)
        count = _add(spans, count, l4 + 2, l4 + 4, PORT, length)
        count = _add(spans, count, l4 + _UDP_CHECKSUM, l4 + _UDP_CHECKSUM + 2, CHECKSUM, length)
    return count


@compiled_inline
def _keyed_word(seed, kind, number, block):
    """Bytes 8 * block .. 8 * block + 7 (little-endian) of random replacement ``number`` of ``kind``."""
    counter = (np.uint64(kind) << np.uint64(48)) | (np.uint64(number) << np.uint64(4)) | np.uint64(block)
    return mix64(mix64(seed ^ _GOLDEN) + counter * _GOLDEN)


@compiled_inline
def _zero(out, at, index, kind):
    out[at] = out[at] & FLOW_LABEL_KEPT_BITS if kind == FLOW_LABEL and index == 0 else 0


@compiled_inline
def _value(data, at, width):
    """A field's bytes as two words (right-aligned), to compare values of up to 16 bytes."""
    high = np.uint64(0)
    low = np.uint64(0)
    for j in range(width):
        high = (high << np.uint64(8)) | (low >> np.uint64(56))
        low = (low << np.uint64(8)) | np.uint64(data[at + j])
    return high, low


@compiled_inline
def _word(data, at):
    return (np.int64(data[at]) << 24) | (np.int64(data[at + 1]) << 16) | (np.int64(data[at + 2]) << 8) | np.int64(
        data[at + 3])


class Scratch(NamedTuple):
    """Working space of `rewrite_flows` for one flow at a time (compiled code cannot allocate)."""

    spans: np.ndarray  # (MAX_SPANS, 3) int64: one packet's spans
    flow_spans: np.ndarray  # (rows, 5) int64: packet, start, stop, kind, whether a whole sequence number
    value_fields: np.ndarray  # (rows, 3) int64: distinct randomised values: kind, width, number
    value_words: np.ndarray  # (rows, 2) uint64: the value as two words
    kind_counts: np.ndarray  # (len(KIND_NAMES),) int64: distinct values so far per kind
    packet_at: np.ndarray  # (packets,) int64: where each packet of the flow starts in ``framed``
    framed: np.ndarray  # uint8: the flow's digest input


def rewrite_flows(data, starts, lengths, l4, directions, list_offsets, seeds, policy, anonymized, masked,
                  flow_heads, packet_heads, digests) -> None:
    """Rewrite every flow's packets; packet p is ``data[starts[p]:starts[p] + lengths[p]]``, flow f is
    packets ``list_offsets[f]:list_offsets[f + 1]`` and draws its replacements from ``seeds[f]``.

    Outputs (each skipped when empty): ``anonymized``, a copy of ``data`` rewritten in place under
    ``policy``; ``masked``, a copy of ``data`` with every identity field zeroed; ``digests`` (flows x 2
    uint64), per flow the digest (`etbert.dataset.digest`) of ``flow_heads[f]`` followed, per packet, by
    ``packet_heads[p]`` and its masked bytes.
    """
    counts = np.diff(list_offsets)
    longest = int(counts.max()) if len(counts) else 0
    rows = max(longest * MAX_SPANS, 1)
    framed = 0
    if len(digests):
        packet_bytes = np.zeros(len(starts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=packet_bytes[1:])
        framed = int((flow_heads.shape[1] + packet_heads.shape[1] * counts + np.diff(packet_bytes[list_offsets])).max())
    scratch = Scratch(
        spans=np.empty((MAX_SPANS, 3), dtype=np.int64),
        flow_spans=np.empty((rows, 5), dtype=np.int64),
        value_fields=np.empty((rows, 3), dtype=np.int64),
        value_words=np.empty((rows, 2), dtype=np.uint64),
        kind_counts=np.zeros(len(KIND_NAMES), dtype=np.int64),
        packet_at=np.empty(max(longest, 1), dtype=np.int64),
        framed=np.empty(max(framed, 1), dtype=np.uint8),
    )
    _rewrite_flows(data, starts, lengths, l4, directions, list_offsets, seeds, policy, anonymized, masked,
                   flow_heads, packet_heads, digests, scratch)


@compiled
def _rewrite_flows(data, starts, lengths, l4, directions, list_offsets, seeds, policy, anonymized, masked,
                   flow_heads, packet_heads, digests, scratch):
    flow_spans = scratch.flow_spans
    for flow in range(len(list_offsets) - 1):
        first, last = list_offsets[flow], list_offsets[flow + 1]
        count = 0
        for p in range(first, last):
            n = packet_spans(data, starts[p], lengths[p], l4[p], scratch.spans)
            for k in range(n):
                flow_spans[count, 0] = p
                flow_spans[count, 1] = scratch.spans[k, 0]
                flow_spans[count, 2] = scratch.spans[k, 1]
                flow_spans[count, 3] = scratch.spans[k, 2]
                flow_spans[count, 4] = _is_sequence(data, starts[p], lengths[p], l4[p], scratch.spans[k, 0],
                                                    scratch.spans[k, 1], scratch.spans[k, 2])
                count += 1
        if len(masked):
            _mask_spans(flow_spans, count, starts, 0, masked)
        if policy != NONE and len(anonymized):
            _anonymize_flow(data, flow_spans, count, starts, l4, directions, seeds[flow], policy, anonymized,
                            scratch)
        if len(digests):
            _digest_masked(data, starts, lengths, flow_heads[flow], packet_heads, first, last, flow_spans, count,
                           scratch, digests[flow])


@compiled
def _digest_masked(data, starts, lengths, flow_head, packet_heads, first, last, flow_spans, count, scratch, out):
    """Frame the flow (its head, then per packet its head and bytes), mask it and digest it into ``out``."""
    framed = scratch.framed
    at = 0
    for j in range(len(flow_head)):
        framed[at + j] = flow_head[j]
    at += len(flow_head)
    for p in range(first, last):
        for j in range(packet_heads.shape[1]):
            framed[at + j] = packet_heads[p, j]
        at += packet_heads.shape[1]
        scratch.packet_at[p - first] = at
        copy_range(data, starts[p], framed, at, lengths[p])
        at += lengths[p]
    _mask_spans(flow_spans, count, scratch.packet_at, first, framed)
    out[0] = xxh64_range(framed, 0, at, SEEDS[0])
    out[1] = xxh64_range(framed, 0, at, SEEDS[1])


@compiled
def _mask_spans(flow_spans, count, packet_at, first, out):
    """Zero the flow's first ``count`` spans in ``out``, where packet p starts at ``packet_at[p - first]``."""
    for s in range(count):
        p, start, stop, kind = flow_spans[s, 0], flow_spans[s, 1], flow_spans[s, 2], flow_spans[s, 3]
        for j in range(stop - start):
            _zero(out, packet_at[p - first] + start + j, j, kind)


@compiled_inline
def _is_sequence(data, start, length, l4, span_start, span_stop, kind):
    """A whole sequence number to make relative (cut ones, and an ack without the ACK flag, are zeroed)."""
    if not (kind == TCP_SEQ or kind == TCP_ACK or kind == TCP_SACK) or span_stop - span_start != SEQUENCE_LEN:
        return False
    return kind != TCP_ACK or (_byte(data, start, length, l4 + tcp.FLAGS) & tcp.ACK_FLAG) != 0


@compiled
def _anonymize_flow(data, flow_spans, n, starts, l4, directions, seed, policy, out, scratch):
    # Distinct randomised values of the flow in order of first appearance, numbered per kind.
    value_fields, value_words, kind_counts = scratch.value_fields, scratch.value_words, scratch.kind_counts
    kind_counts[:] = 0
    values = 0
    # First sequence number per direction, and first ack (or SACK edge), with the packet each came in.
    seq_base_0 = seq_base_1 = ack_first_0 = ack_first_1 = 0
    seq_packet_0 = seq_packet_1 = ack_packet_0 = ack_packet_1 = _NEVER
    if policy == STRICT:
        for s in range(n):
            if flow_spans[s, 4]:
                p = flow_spans[s, 0]
                value = _word(data, starts[p] + flow_spans[s, 1])
                seq = flow_spans[s, 3] == TCP_SEQ
                if directions[p] == 0:
                    if seq and seq_packet_0 == _NEVER:
                        seq_base_0, seq_packet_0 = value, p
                    elif not seq and ack_packet_0 == _NEVER:
                        ack_first_0, ack_packet_0 = value, p
                else:
                    if seq and seq_packet_1 == _NEVER:
                        seq_base_1, seq_packet_1 = value, p
                    elif not seq and ack_packet_1 == _NEVER:
                        ack_first_1, ack_packet_1 = value, p
    # An ack counts from the peer's first seq, if that came before this direction's first ack.
    ack_base_0 = seq_base_1 if seq_packet_1 < ack_packet_0 else ack_first_0
    ack_base_1 = seq_base_0 if seq_packet_0 < ack_packet_1 else ack_first_1

    for s in range(n):
        p, start, stop, kind = flow_spans[s, 0], flow_spans[s, 1], flow_spans[s, 2], flow_spans[s, 3]
        at = starts[p] + start
        width = stop - start
        if kind == IP_ADDR or kind == IP_ID or kind == PORT:
            high, low = _value(data, at, width)
            number = -1
            for v in range(values):
                if (value_fields[v, 0] == kind and value_fields[v, 1] == width and value_words[v, 0] == high
                        and value_words[v, 1] == low):
                    number = value_fields[v, 2]
                    break
            if number < 0:
                number = kind_counts[kind]
                kind_counts[kind] += 1
                value_fields[values, 0], value_fields[values, 1], value_fields[values, 2] = kind, width, number
                value_words[values, 0], value_words[values, 1] = high, low
                values += 1
            word = np.uint64(0)
            for j in range(width):
                if j & 7 == 0:
                    word = _keyed_word(seed, kind, number, j >> 3)
                out[at + j] = np.uint8((word >> np.uint64((j & 7) * 8)) & np.uint64(0xFF))
        elif policy == STRICT:
            if flow_spans[s, 4]:
                if directions[p] == 0:
                    base = seq_base_0 if kind == TCP_SEQ else ack_base_0
                else:
                    base = seq_base_1 if kind == TCP_SEQ else ack_base_1
                relative = (_word(data, at) - base) % 2**32
                for j in range(SEQUENCE_LEN):
                    out[at + j] = (relative >> (8 * (SEQUENCE_LEN - 1 - j))) & 0xFF
            else:
                for j in range(width):
                    _zero(out, at + j, j, kind)
