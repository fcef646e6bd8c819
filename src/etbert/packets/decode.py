"""Decode a FrameBatch into a PacketBatch: link layer, IP, TCP/UDP, vectorised over the whole batch.

Each layer works on the frames the layer below accepted, with one fancy index per field; loops
only walk header chains (VLAN tags, IPv6 extension headers) a bounded number of steps, and only over
the frames still inside such a chain.

A layer's fields are written once that layer was parsed whole: a frame rejected in a layer (TRUNCATED,
MALFORMED) keeps the fields of the layers below it and the "none" values (-1 offsets, zeros) above.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from etbert.capture.frames import FrameBatch
from etbert.packets.batch import PacketBatch, Status
from etbert.packets.link import locate_network_layer
from etbert.packets.network import ADDRESS, IpHeaders, parse_network_layer
from etbert.packets.transport import TransportHeaders, parse_transport_layer


def decode(frames: FrameBatch) -> PacketBatch:
    # Frames of link types no layer handles keep this default.
    status = np.full(len(frames), Status.UNKNOWN_LINKTYPE, dtype=np.uint8)
    network = locate_network_layer(frames, status)
    ips = parse_network_layer(network, frames.wirelen, status)
    transports = [t for ip in ips for t in parse_transport_layer(ip, status)]
    return _assemble(frames, status, ips, transports)


def status_counts(batch: PacketBatch) -> dict[str, int]:
    """Frames per status, every status named (lower case) even when none had it."""
    counts = np.bincount(batch.status, minlength=len(Status))
    return {status.name.lower(): int(counts[status]) for status in Status}


def _assemble(
    frames: FrameBatch, status: np.ndarray, ips: Sequence[IpHeaders], transports: Sequence[TransportHeaders]
) -> PacketBatch:
    n = len(frames)
    fields = {
        "ip_version": np.zeros(n, dtype=np.uint8),
        "l3_offset": np.full(n, -1, dtype=np.int32),
        "ip_len": np.zeros(n, dtype=np.int32),
        "protocol": np.zeros(n, dtype=np.uint8),
        "src": np.zeros((n, ADDRESS.itemsize), dtype=np.uint8),
        "dst": np.zeros((n, ADDRESS.itemsize), dtype=np.uint8),
        "fragment": np.zeros(n, dtype=bool),
        "fragment_id": np.zeros(n, dtype=np.uint32),
        "l4_offset": np.full(n, -1, dtype=np.int32),
        "payload_offset": np.full(n, -1, dtype=np.int32),
        "sport": np.zeros(n, dtype=np.uint16),
        "dport": np.zeros(n, dtype=np.uint16),
        "tcp_flags": np.zeros(n, dtype=np.uint8),
    }
    # Addresses are scattered as whole 16-byte items, not byte by byte.
    src, dst = fields["src"].view(ADDRESS).reshape(n), fields["dst"].view(ADDRESS).reshape(n)
    for ip in ips:
        rows = ip.cursor.rows
        fields["ip_version"][rows] = ip.version
        fields["l3_offset"][rows] = ip.l3_offset
        fields["ip_len"][rows] = ip.ip_len
        fields["protocol"][rows] = ip.protocol
        src[rows], dst[rows] = ip.src, ip.dst
        fields["fragment"][rows] = ip.fragment
        fields["fragment_id"][rows] = ip.fragment_id
    for transport in transports:
        for name in ("l4_offset", "payload_offset", "sport", "dport", "tcp_flags"):
            fields[name][transport.rows] = getattr(transport, name)
    return PacketBatch(frames=frames, status=status, **fields)
