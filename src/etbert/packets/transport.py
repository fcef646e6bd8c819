"""Transport layer: TCP and UDP ports, TCP flags, where the payload starts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from etbert.packets.batch import Status
from etbert.packets.cursor import Cursor, header_layout
from etbert.packets.network import IpHeaders
from etbert.protocols import tcp, udp

_TCP_HEADER = header_layout(
    tcp.MIN_HEADER_LEN,
    sport=(tcp.SRC_PORT.start, ">u2"),
    dport=(tcp.DST_PORT.start, ">u2"),
    data_offset=(tcp.DATA_OFFSET, "u1"),
    flags=(tcp.FLAGS, "u1"),
)
_UDP_HEADER = header_layout(udp.HEADER_LEN, sport=(udp.SRC_PORT.start, ">u2"), dport=(udp.DST_PORT.start, ">u2"))


@dataclass(frozen=True)
class TransportHeaders:
    """Frames whose TCP or UDP header was captured and is consistent."""

    rows: np.ndarray  # int64, frames of the batch
    l4_offset: np.ndarray  # int64
    payload_offset: np.ndarray  # int64, may pass the captured bytes where the snaplen cut the frame
    sport: np.ndarray  # uint16
    dport: np.ndarray  # uint16
    tcp_flags: np.ndarray | int  # uint8 (0 for UDP)


def parse_transport_layer(ip: IpHeaders, status: np.ndarray) -> tuple[TransportHeaders, TransportHeaders]:
    """TCP and UDP headers after the IP headers; every IP frame gets its final ``status`` here.

    A non-first fragment of a protocol other than TCP/UDP counts as OTHER_L4: FRAGMENT is kept for
    pieces of the packets the flow meter follows.
    """
    is_tcp, is_udp = ip.protocol == tcp.PROTOCOL, ip.protocol == udp.PROTOCOL
    other = ~(is_tcp | is_udp)
    status[ip.cursor.rows[other]] = Status.OTHER_L4
    status[ip.cursor.rows[ip.later_fragment & ~other]] = Status.FRAGMENT
    ip_end = ip.l3_offset + ip.ip_len
    tcp_first, udp_first = is_tcp & ~ip.later_fragment, is_udp & ~ip.later_fragment
    return (
        _parse_tcp(ip.cursor.select(tcp_first), ip_end[tcp_first], status),
        _parse_udp(ip.cursor.select(udp_first), ip_end[udp_first], status),
    )


def _parse_tcp(cursor: Cursor, ip_end: np.ndarray, status: np.ndarray) -> TransportHeaders:
    cursor, ip_end = _captured(cursor, ip_end, tcp.MIN_HEADER_LEN, status)
    header = cursor.read(_TCP_HEADER)
    header_len = (header["data_offset"] >> 4).astype(np.int64) * 4
    valid = _consistent(cursor, ip_end, header_len, tcp.MIN_HEADER_LEN, status)
    if not valid.all():
        cursor, header, header_len = cursor.select(valid), header[valid], header_len[valid]
    return TransportHeaders(
        rows=cursor.rows,
        l4_offset=cursor.offset,
        payload_offset=cursor.offset + header_len,
        sport=header["sport"],
        dport=header["dport"],
        tcp_flags=header["flags"],
    )


def _parse_udp(cursor: Cursor, ip_end: np.ndarray, status: np.ndarray) -> TransportHeaders:
    cursor, ip_end = _captured(cursor, ip_end, udp.HEADER_LEN, status)
    header = cursor.read(_UDP_HEADER)
    valid = _consistent(cursor, ip_end, udp.HEADER_LEN, udp.HEADER_LEN, status)
    if not valid.all():
        cursor, header = cursor.select(valid), header[valid]
    return TransportHeaders(
        rows=cursor.rows,
        l4_offset=cursor.offset,
        payload_offset=cursor.offset + udp.HEADER_LEN,
        sport=header["sport"],
        dport=header["dport"],
        tcp_flags=0,
    )


def _captured(cursor: Cursor, ip_end: np.ndarray, fixed_len: int, status: np.ndarray) -> tuple[Cursor, np.ndarray]:
    """Frames whose fixed header was captured; the others are TRUNCATED."""
    fit = cursor.fits(fixed_len)
    return cursor.keep(fit, status, Status.TRUNCATED), ip_end[fit]


def _consistent(cursor: Cursor, ip_end: np.ndarray, header_len, fixed_len: int, status: np.ndarray) -> np.ndarray:
    """Whether the stated header length covers the fixed part and ends inside the IP packet; those
    frames are OK, the others MALFORMED. Options past the captured bytes are fine: only the payload
    start is taken from them."""
    valid = (header_len >= fixed_len) & (cursor.offset + header_len <= ip_end)
    status[cursor.rows] = np.where(valid, Status.OK, Status.MALFORMED)
    return valid
