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
"""

from __future__ import annotations

import hashlib

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

RANDOMISED = frozenset({IP_ADDR, IP_ID, PORT})  # what seed-004 replaces
ZEROED = frozenset({CHECKSUM, TCP_TIMESTAMP})  # what strict adds as zeros
FLOW_LABEL_KEPT_BITS = 0xF0  # byte 1 of IPv6 holds 4 traffic-class bits before the flow label's first 4
SEQUENCE_MODULUS = 2**32
SEQUENCE_LEN = 4

Span = tuple[int, int, str]


def identity_fields(packet: bytes, l4_offset: int) -> list[Span]:
    """The identity spans present in one packet: (start, stop, kind), clipped to the bytes stored.

    The transport header counts only when ``l4_offset`` agrees with where the IP header chain says it
    starts (-1: no transport header, e.g. a non-first fragment). For a flow label span, only the low 4
    bits of its first byte belong to the label.
    """
    spans: list[Span] = []
    if not packet:
        return spans
    version = packet[0] >> 4
    if version == 4:
        protocol, transport = _ipv4_fields(packet, spans)
    elif version == 6:
        protocol, transport = _ipv6_fields(packet, spans)
    else:
        return spans
    if l4_offset >= 0 and l4_offset == transport:
        if protocol == tcp.PROTOCOL:
            _tcp_fields(packet, l4_offset, spans)
        elif protocol == udp.PROTOCOL:
            _udp_fields(packet, l4_offset, spans)
    return [(start, min(stop, len(packet)), kind) for start, stop, kind in spans if start < len(packet)]


def _ipv4_fields(packet: bytes, spans: list[Span]) -> tuple[int | None, int | None]:
    spans += [
        (ipv4.IDENTIFICATION.start, ipv4.IDENTIFICATION.stop, IP_ID),
        (ipv4.CHECKSUM.start, ipv4.CHECKSUM.stop, CHECKSUM),
        (ipv4.SRC.start, ipv4.SRC.stop, IP_ADDR),
        (ipv4.DST.start, ipv4.DST.stop, IP_ADDR),
    ]
    header_len = ipv4.header_len(packet)
    # Route options carry the addresses of the hosts on the path.
    for kind, start, end in ipv4.iter_options(packet, ipv4.MIN_HEADER_LEN, header_len):
        if kind in ipv4.ROUTE_OPTIONS:
            for at in range(start + ipv4.ROUTE_ADDRESSES_START, end, ipv4.ADDRESS_LEN):
                spans.append((at, min(at + ipv4.ADDRESS_LEN, end), IP_ADDR))
    if len(packet) <= ipv4.PROTOCOL or header_len < ipv4.MIN_HEADER_LEN or ipv4.is_later_fragment(packet):
        return None, None
    return packet[ipv4.PROTOCOL], header_len


def _ipv6_fields(packet: bytes, spans: list[Span]) -> tuple[int | None, int | None]:
    spans += [
        (ipv6.FLOW_LABEL.start, ipv6.FLOW_LABEL.stop, FLOW_LABEL),
        (ipv6.SRC.start, ipv6.SRC.stop, IP_ADDR),
        (ipv6.DST.start, ipv6.DST.stop, IP_ADDR),
    ]
    headers, protocol, transport = ipv6.extension_chain(packet)
    for kind, start, _ in headers:
        if kind == ipv6.FRAGMENT:
            identification = ipv6.FRAGMENT_IDENTIFICATION
            spans.append((start + identification.start, start + identification.stop, IP_ID))
    return protocol, transport


def _tcp_fields(packet: bytes, start: int, spans: list[Span]) -> None:
    spans += [
        (start + tcp.SRC_PORT.start, start + tcp.SRC_PORT.stop, PORT),
        (start + tcp.DST_PORT.start, start + tcp.DST_PORT.stop, PORT),
        (start + tcp.SEQ.start, start + tcp.SEQ.stop, TCP_SEQ),
        (start + tcp.ACK.start, start + tcp.ACK.stop, TCP_ACK),
        (start + tcp.CHECKSUM.start, start + tcp.CHECKSUM.stop, CHECKSUM),
    ]
    options = ipv4.iter_options(packet, start + tcp.MIN_HEADER_LEN, start + tcp.header_len(packet, start))
    for kind, option, end in options:
        data = option + tcp.OPTION_DATA_START
        if kind == tcp.OPTION_TIMESTAMP:
            spans.append((data, end, TCP_TIMESTAMP))
        elif kind == tcp.OPTION_SACK:
            spans += [(at, min(at + tcp.SACK_EDGE_LEN, end), TCP_SACK) for at in range(data, end, tcp.SACK_EDGE_LEN)]


def _udp_fields(packet: bytes, start: int, spans: list[Span]) -> None:
    spans += [
        (start + udp.SRC_PORT.start, start + udp.SRC_PORT.stop, PORT),
        (start + udp.DST_PORT.start, start + udp.DST_PORT.stop, PORT),
        (start + udp.CHECKSUM.start, start + udp.CHECKSUM.stop, CHECKSUM),
    ]


def mask_identity(packets: list[bytes], l4_offsets: list[int]) -> list[bytes]:
    """Every identity span zeroed: the canonical form in which duplicate flows are found, whatever the policy."""
    masked = []
    for packet, l4_offset in zip(packets, l4_offsets, strict=True):
        data = bytearray(packet)
        for start, stop, kind in identity_fields(packet, l4_offset):
            _zero(data, start, stop, kind)
        masked.append(bytes(data))
    return masked


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
    if policy not in POLICIES:
        raise ValueError(f"unknown anonymisation policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if policy == "none":
        return [bytes(packet) for packet in packets]
    strict = policy == "strict"
    pseudonyms = _Pseudonyms(seed)
    sequence = _RelativeSequence()
    anonymized = []
    for packet, l4_offset, direction in zip(packets, l4_offsets, directions, strict=True):
        data = bytearray(packet)
        for start, stop, kind in identity_fields(packet, l4_offset):
            if kind in RANDOMISED:
                data[start:stop] = pseudonyms.replace(kind, bytes(packet[start:stop]))
            elif not strict:
                continue
            elif kind in (TCP_SEQ, TCP_ACK, TCP_SACK) and stop - start == SEQUENCE_LEN:
                value = int.from_bytes(packet[start:stop], "big")
                relative = sequence.relative(kind, value, direction, _ack_flag(packet, l4_offset))
                data[start:stop] = relative.to_bytes(SEQUENCE_LEN, "big")
            else:  # checksums, timestamps, flow label, and sequence numbers cut short by the byte cap
                _zero(data, start, stop, kind)
        anonymized.append(bytes(data))
    return anonymized


def _zero(data: bytearray, start: int, stop: int, kind: str) -> None:
    if kind == FLOW_LABEL:
        data[start] &= FLOW_LABEL_KEPT_BITS
        start += 1
    data[start:stop] = bytes(stop - start)


def _ack_flag(packet: bytes, l4_offset: int) -> bool:
    at = l4_offset + tcp.FLAGS
    return at < len(packet) and bool(packet[at] & tcp.ACK_FLAG)


class _Pseudonyms:
    """One random replacement per distinct (kind, value) in a flow, in order of first appearance, from a
    keystream of the seed alone (BLAKE2b in counter mode: cheaper than a NumPy generator per flow)."""

    def __init__(self, seed: int):
        self._seed = seed
        self._stream = b""
        self._blocks = 0
        self._replacements: dict[tuple[str, bytes], bytes] = {}

    def replace(self, kind: str, value: bytes) -> bytes:
        key = (kind, value)
        if key not in self._replacements:
            self._replacements[key] = self._draw(len(value))
        return self._replacements[key]

    def _draw(self, count: int) -> bytes:
        while len(self._stream) < count:
            self._stream += hashlib.blake2b(b"%d:%d" % (self._seed, self._blocks)).digest()
            self._blocks += 1
        drawn, self._stream = self._stream[:count], self._stream[count:]
        return drawn


class _RelativeSequence:
    """TCP sequence numbers relative to each direction's first sequence number seen.

    seq counts from its own direction's first seq; ack (and SACK edges, which acknowledge the same
    stream) from the other direction's first seq, fixed at this direction's first ack. When the peer
    has not been seen yet (capture started mid-flow) that first ack itself becomes the base. An ack
    field without the ACK flag carries no number (e.g. in a SYN) and is zeroed.
    """

    def __init__(self):
        self._seq_base: list[int | None] = [None, None]
        self._ack_base: list[int | None] = [None, None]

    def relative(self, kind: str, value: int, direction: int, ack_flag: bool) -> int:
        if kind == TCP_SEQ:
            base = self._seq_base[direction]
            if base is None:
                base = self._seq_base[direction] = value
        elif kind == TCP_ACK and not ack_flag:
            return 0
        else:
            base = self._ack_base[direction]
            if base is None:
                peer = self._seq_base[1 - direction]
                base = self._ack_base[direction] = value if peer is None else peer
        return (value - base) % SEQUENCE_MODULUS
