"""The contract between the packet decoder and the flow meter."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from etbert.capture.frames import FrameBatch


class Status(IntEnum):
    """Why a frame did or did not yield a TCP/UDP packet; counted in every summary."""

    OK = 0  # IPv4/IPv6 carrying TCP or UDP, ports parsed
    FRAGMENT = 1  # non-first IP fragment: addresses and IP id known, no ports
    OTHER_L4 = 2  # IP, but neither TCP nor UDP (ICMP, ESP, GRE, ...): counted and skipped
    NOT_IP = 3  # link layer fine, payload not IP (ARP, LLDP, ...): counted and skipped
    UNKNOWN_LINKTYPE = 4  # link type the decoder does not know
    TRUNCATED = 5  # captured bytes end inside a header the decoder needed
    MALFORMED = 6  # header fields contradict themselves (IHL < 5, bad version, ...)


@dataclass(frozen=True)
class PacketBatch:
    """Decoded header fields of every frame of a FrameBatch (same length, same order).

    Offsets are from the start of each frame. Addresses are 16 bytes: IPv4 addresses
    are stored IPv4-mapped (::ffff:a.b.c.d) so one key layout serves both versions.
    Fields that do not apply to a frame (ports of a fragment, flags of UDP) are 0.
    """

    frames: FrameBatch
    status: np.ndarray  # uint8, Status
    ip_version: np.ndarray  # uint8, 4 or 6 (0 when not IP)
    l3_offset: np.ndarray  # int32, start of the IP header (-1 when not IP)
    l4_offset: np.ndarray  # int32, start of the TCP/UDP header (-1 when none)
    payload_offset: np.ndarray  # int32, start of the TCP/UDP payload (-1 when none)
    ip_len: np.ndarray  # int32, network-layer packet length as on the wire (from the IP header)
    protocol: np.ndarray  # uint8, final upper-layer protocol after extension headers
    src: np.ndarray  # (n, 16) uint8
    dst: np.ndarray  # (n, 16) uint8
    sport: np.ndarray  # uint16
    dport: np.ndarray  # uint16
    tcp_flags: np.ndarray  # uint8
    fragment: np.ndarray  # bool, packet is an IP fragment (first or later)
    fragment_id: np.ndarray  # uint32, IPv4 identification or IPv6 fragment identification

    def __len__(self) -> int:
        return len(self.status)
