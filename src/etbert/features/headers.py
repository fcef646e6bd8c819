"""Header fields of the first K packets, read from the stored packet bytes.

`header_features` is the header-field baseline's input: what the IP and TCP/UDP headers say about how a
host's stack and application behave (version, lengths, TTL, flags, window, which TCP options, the first
payload bytes where TLS puts its record type and version), and never who is talking: addresses, ports,
IP identification, checksums, sequence numbers, TCP timestamp values and the IPv6 flow label are left out.
`identity_header_features` is exactly those identity fields, so an audit can train with and without them
and see how much a model leans on them.

Stored packets start at the IP header; ``pkt_l4_offset`` / ``pkt_payload_offset`` say where the transport
header and payload start (-1: none). Field positions come from `etbert.protocols`. Every feature is a
number; ABSENT (-1) marks a packet the flow does not have, a field the packet does not carry (TCP fields
of a UDP packet, a missing TCP option) and a byte beyond what was stored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etbert.features.flow_stats import ABSENT, packet_major, rank_in_lists
from etbert.protocols import ipv4, ipv6, tcp, udp

PAYLOAD_BYTES = 8  # a TLS record header is 5 bytes; a few more catch the handshake type and version
IHL_MASK = 0x0F  # low nibble of the IPv4 version/IHL byte
WORD = 4  # IPv4 IHL and TCP data offset count 32-bit words
SIGNALLED_OPTIONS = {  # TCP options whose presence is a stack's signature (their values are not identity)
    "mss": tcp.OPTION_MSS,
    "window_scale": tcp.OPTION_WINDOW_SCALE,
    "sack_permitted": tcp.OPTION_SACK_PERMITTED,
    "sack": tcp.OPTION_SACK,
    "timestamps": tcp.OPTION_TIMESTAMP,
}

PACKET_COLUMNS = ("pkt_bytes", "pkt_l4_offset", "protocol")
HEADER_COLUMNS = (*PACKET_COLUMNS, "pkt_direction", "pkt_length", "pkt_payload_offset")
IDENTITY_COLUMNS = (*PACKET_COLUMNS, "client_port", "server_port")


def header_features(flows: pa.Table, packets: int) -> tuple[np.ndarray, list[str]]:
    """The header fields of the first ``packets`` packets, packet-major (``p0_ip_ttl``, ...), no identity fields.

    ``direction`` (0 client to server, 1 back) comes with each packet: with addresses and ports gone,
    nothing else in the headers says which side sent it.
    """
    stored = _StoredPackets.of(flows, packets)
    v4, v6, word = stored.ipv4, stored.ipv6, stored.uint32(0)
    fragment_field = stored.uint16(ipv4.FLAGS_FRAGMENT)
    is_tcp, is_udp, l4, payload = stored.tcp, stored.udp, stored.l4, stored.payload
    options = _tcp_options(stored)
    fields = {
        "direction": stored.direction,
        "ip_version": np.where(stored.length > 0, stored.byte(0) >> 4, ABSENT),
        "ip_header_len": _ip(v4, v6, (stored.byte(ipv4.VERSION_IHL) & IHL_MASK) * WORD,
                             np.where(stored.l4 >= 0, stored.l4, ipv6.HEADER_LEN)),
        "ip_tos": _ip(v4, v6, stored.byte(ipv4.TOS), (word >> ipv6.TRAFFIC_CLASS_SHIFT) & 0xFF),
        "ip_total_length": _ip(v4, v6, stored.uint16(ipv4.TOTAL_LENGTH),
                               stored.uint16(ipv6.PAYLOAD_LENGTH) + ipv6.HEADER_LEN),
        "ip_dont_fragment": _ip(v4, v6, (fragment_field & ipv4.DONT_FRAGMENT) > 0, ABSENT),
        "ip_more_fragments": _ip(v4, v6, (fragment_field & ipv4.MORE_FRAGMENTS) > 0, ABSENT),
        "ip_ttl": _ip(v4, v6, stored.byte(ipv4.TTL), stored.byte(ipv6.HOP_LIMIT)),
        "ip_protocol": _ip(v4, v6, stored.byte(ipv4.PROTOCOL), stored.byte(ipv6.NEXT_HEADER)),
        "tcp_header_len": np.where(is_tcp, (stored.byte(l4 + tcp.DATA_OFFSET) >> 4) * WORD, ABSENT),
        "tcp_flags": np.where(is_tcp, stored.byte(l4 + tcp.FLAGS), ABSENT),
        "tcp_window": np.where(is_tcp, stored.uint16(l4 + tcp.WINDOW.start), ABSENT),
        "tcp_mss": options.value(tcp.OPTION_MSS, lambda at, rows: stored.uint16(at + tcp.OPTION_DATA_START, rows)),
        "tcp_window_scale": options.value(tcp.OPTION_WINDOW_SCALE,
                                          lambda at, rows: stored.byte(at + tcp.OPTION_DATA_START, rows)),
        **{f"tcp_option_{name}": options.present(kind) for name, kind in SIGNALLED_OPTIONS.items()},
        "udp_length": np.where(is_udp, stored.uint16(l4 + udp.LENGTH.start), ABSENT),
        "payload_length": np.where(payload >= 0, np.maximum(stored.wire_length - payload, 0), ABSENT),
        **{f"payload_{i}": np.where((payload >= 0) & (payload + i < stored.wire_length), stored.byte(payload + i),
                                    ABSENT) for i in range(PAYLOAD_BYTES)},  # not the link layer's padding
    }
    return packet_major({name: stored.matrix(values) for name, values in fields.items()}, packets)


def identity_header_features(flows: pa.Table, packets: int) -> tuple[np.ndarray, list[str]]:
    """The identity fields header_features leaves out, as numbers: the flow's client and server ports,
    then per packet the address bytes (IPv4 in the first 4 of 16), IPv4 identification and header
    checksum, TCP/UDP checksum, TCP seq/ack, TCP timestamp values and the IPv6 flow label."""
    stored = _StoredPackets.of(flows, packets)
    v4, v6, l4 = stored.ipv4, stored.ipv6, stored.l4
    is_tcp, is_udp = stored.tcp, stored.udp
    options = _tcp_options(stored)
    fields = {}
    for side, v4_field, v6_field in (("src", ipv4.SRC, ipv6.SRC), ("dst", ipv4.DST, ipv6.DST)):
        for i in range(ipv6.ADDRESS_LEN):
            v4_byte = stored.byte(v4_field.start + i) if i < ipv4.ADDRESS_LEN else ABSENT
            fields[f"{side}_addr_{i}"] = _ip(v4, v6, v4_byte, stored.byte(v6_field.start + i))
    fields.update({
        "ip_id": _ip(v4, v6, stored.uint16(ipv4.IDENTIFICATION.start), ABSENT),
        "ip_checksum": _ip(v4, v6, stored.uint16(ipv4.CHECKSUM.start), ABSENT),
        "l4_checksum": np.where(is_tcp, stored.uint16(l4 + tcp.CHECKSUM.start),
                                np.where(is_udp, stored.uint16(l4 + udp.CHECKSUM.start), ABSENT)),
        "tcp_seq": np.where(is_tcp, stored.uint32(l4 + tcp.SEQ.start), ABSENT),
        "tcp_ack": np.where(is_tcp, stored.uint32(l4 + tcp.ACK.start), ABSENT),
        "tcp_timestamp_value": options.value(
            tcp.OPTION_TIMESTAMP, lambda at, rows: stored.uint32(at + tcp.OPTION_DATA_START, rows)),
        "tcp_timestamp_echo": options.value(
            tcp.OPTION_TIMESTAMP, lambda at, rows: stored.uint32(at + tcp.OPTION_DATA_START + 4, rows)),
        "ipv6_flow_label": _ip(v4, v6, ABSENT, stored.uint32(0) & ipv6.FLOW_LABEL_MASK),
    })
    per_packet, names = packet_major({name: stored.matrix(values) for name, values in fields.items()}, packets)
    ports = np.column_stack([flows.column(name).to_numpy().astype(np.float64)
                             for name in ("client_port", "server_port")])
    return np.hstack([ports, per_packet]), ["client_port", "server_port", *names]


def _ip(v4: np.ndarray, v6: np.ndarray, if_v4, if_v6) -> np.ndarray:
    return np.where(v4, if_v4, np.where(v6, if_v6, ABSENT)).astype(np.float64)


@dataclass(frozen=True)
class _StoredPackets:
    """The first K stored packets of every flow back to back: packet i is ``data[start[i]:][:length[i]]``,
    the ``rank[i]``-th packet of flow ``flow[i]``. Offsets are into each packet's bytes."""

    data: np.ndarray  # uint8
    start: np.ndarray  # int64
    length: np.ndarray
    flow: np.ndarray
    rank: np.ndarray
    flows: int
    packets: int  # K
    l4: np.ndarray  # -1: no transport header
    payload: np.ndarray  # -1: no payload offset
    protocol: np.ndarray  # the flow's transport protocol (what the l4 offset points at)
    wire_length: np.ndarray
    direction: np.ndarray

    @classmethod
    def of(cls, flows: pa.Table, packets: int) -> _StoredPackets:
        lists = pc.list_slice(flows.column("pkt_bytes").combine_chunks(), 0, packets)
        counts = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
        binary = pc.list_flatten(lists)
        if not pa.types.is_binary(binary.type):
            raise TypeError(f"pkt_bytes must be list<binary>, not list<{binary.type}>")
        _, offset_buffer, data_buffer = binary.buffers()
        offsets = np.frombuffer(offset_buffer, dtype=np.int32)[binary.offset: binary.offset + len(binary) + 1]
        offsets = offsets.astype(np.int64)
        flow = np.repeat(np.arange(len(counts)), counts)

        def per_packet(name: str) -> np.ndarray:
            if name not in flows.column_names:
                return np.full(len(flow), ABSENT)
            column = pc.list_flatten(pc.list_slice(flows.column(name).combine_chunks(), 0, packets))
            return column.to_numpy(zero_copy_only=False).astype(np.int64)

        return cls(
            data=np.frombuffer(data_buffer or b"", dtype=np.uint8),
            start=offsets[:-1],
            length=np.diff(offsets),
            flow=flow,
            rank=rank_in_lists(counts),
            flows=len(counts),
            packets=packets,
            l4=per_packet("pkt_l4_offset"),
            payload=per_packet("pkt_payload_offset"),
            protocol=flows.column("protocol").to_numpy().astype(np.int64)[flow],
            wire_length=per_packet("pkt_length"),
            direction=per_packet("pkt_direction"),
        )

    @property
    def ipv4(self) -> np.ndarray:
        return (self.byte(ipv4.VERSION_IHL) >> 4) == 4

    @property
    def ipv6(self) -> np.ndarray:
        return (self.byte(0) >> 4) == 6

    @property
    def tcp(self) -> np.ndarray:
        return (self.l4 >= 0) & (self.protocol == tcp.PROTOCOL)

    @property
    def udp(self) -> np.ndarray:
        return (self.l4 >= 0) & (self.protocol == udp.PROTOCOL)

    def byte(self, at: np.ndarray | int, rows: np.ndarray | None = None) -> np.ndarray:
        """Byte ``at`` of each packet (of ``rows``; all by default); -1 where not stored."""
        start, length = (self.start, self.length) if rows is None else (self.start[rows], self.length[rows])
        at = np.broadcast_to(at, start.shape)
        inside = (at >= 0) & (at < length)
        if not len(self.data):
            return np.full(start.shape, -1, dtype=np.int64)
        return np.where(inside, self.data[np.where(inside, start + at, 0)].astype(np.int64), -1)

    def uint16(self, at, rows=None) -> np.ndarray:
        return self._big_endian(at, rows, 2)

    def uint32(self, at, rows=None) -> np.ndarray:
        return self._big_endian(at, rows, 4)

    def _big_endian(self, at, rows, size: int) -> np.ndarray:
        parts = [self.byte(np.asarray(at) + i, rows) for i in range(size)]
        value = np.zeros(parts[0].shape, dtype=np.int64)
        for part in parts:
            value = value << 8 | np.maximum(part, 0)
        return np.where(np.all([part >= 0 for part in parts], axis=0), value, -1)

    def matrix(self, values) -> np.ndarray:
        """(flows, K) matrix of per-packet ``values``; ABSENT for packets a flow does not have."""
        matrix = np.full((self.flows, self.packets), ABSENT)
        matrix[self.flow, self.rank] = np.broadcast_to(np.asarray(values, dtype=np.float64), self.flow.shape)
        return matrix


@dataclass(frozen=True)
class _TcpOptions:
    """Each TCP packet's options: ``kind[j]`` starts at ``at[j]`` of packet ``rows[j]``."""

    stored: _StoredPackets
    rows: np.ndarray
    kind: np.ndarray
    at: np.ndarray

    def present(self, kind: int) -> np.ndarray:
        """1 where the packet carries the option, 0 where not, ABSENT for packets that are not TCP."""
        present = np.zeros(len(self.stored.start))
        present[self.rows[self.kind == kind]] = 1
        return np.where(self.stored.tcp, present, ABSENT)

    def value(self, kind: int, read) -> np.ndarray:
        """``read(option start, rows)`` for the packets that carry the option (the first one), ABSENT elsewhere."""
        chosen = self.kind == kind
        rows, first = np.unique(self.rows[chosen], return_index=True)
        values = np.full(len(self.stored.start), ABSENT)
        values[rows] = read(self.at[chosen][first], rows)
        return values


def _tcp_options(stored: _StoredPackets) -> _TcpOptions:
    """Walk the TCP options of every TCP packet at once, one option per step (at most 40 steps)."""
    rows = np.flatnonzero(stored.tcp)
    header_len = (stored.byte(stored.l4[rows] + tcp.DATA_OFFSET, rows) >> 4) * WORD
    at = stored.l4[rows] + tcp.MIN_HEADER_LEN
    stop = np.minimum(stored.l4[rows] + header_len, stored.length[rows])
    found = []
    while len(rows):
        walking = at < stop
        rows, at, stop = rows[walking], at[walking], stop[walking]
        kind = stored.byte(at, rows)
        size = stored.byte(at + 1, rows)
        nop = kind == tcp.OPTION_NOP
        option = (kind != tcp.OPTION_END) & ~nop & (at + 1 < stop) & (size >= 2)
        found.append((rows[option], kind[option], at[option]))
        at = np.where(nop, at + 1, at + size)
        keep = nop | option
        rows, at, stop = rows[keep], at[keep], stop[keep]
    parts = [np.concatenate([step[i] for step in found]) if found else np.zeros(0, np.int64) for i in range(3)]
    return _TcpOptions(stored, *parts)
