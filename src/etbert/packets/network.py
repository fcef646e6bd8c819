"""Network layer: IPv4 and IPv6 headers, options and extension headers, fragments."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from etbert.packets.batch import Status
from etbert.packets.cursor import Cursor, header_layout
from etbert.packets.link import ANY_IP, NetworkStart
from etbert.protocols import ethernet, ipv4, ipv6

from etbert.protocols.ipv6 import EXTENSION_LENGTH, EXTENSION_NEXT_HEADER, MAX_EXTENSION_HEADERS

# Constants etbert.protocols does not (yet) define.
VERSION_BYTE = 0  # both IP versions keep the version in the high nibble of the first byte
MIN_EXTENSION_HEADER_LEN = 8  # extension headers are multiples of 8 bytes (AH: of 4, at least 8)
IPV4_MAPPED_PREFIX = np.array([0] * 10 + [0xFF, 0xFF], dtype=np.uint8)  # ::ffff:0:0/96 (RFC 4291)

ADDRESS = np.dtype((np.void, ipv6.ADDRESS_LEN))  # one 16-byte address per element
_VERSION = header_layout(1, version=(VERSION_BYTE, "u1"))
_IPV4_HEADER = header_layout(
    ipv4.MIN_HEADER_LEN,
    version_ihl=(ipv4.VERSION_IHL, "u1"),
    total_length=(ipv4.TOTAL_LENGTH, ">u2"),
    identification=(ipv4.IDENTIFICATION.start, ">u2"),
    flags_fragment=(ipv4.FLAGS_FRAGMENT, ">u2"),
    protocol=(ipv4.PROTOCOL, "u1"),
    src=(ipv4.SRC.start, f"V{ipv4.ADDRESS_LEN}"),
    dst=(ipv4.DST.start, f"V{ipv4.ADDRESS_LEN}"),
)
_IPV6_HEADER = header_layout(
    ipv6.HEADER_LEN,
    payload_length=(ipv6.PAYLOAD_LENGTH, ">u2"),
    next_header=(ipv6.NEXT_HEADER, "u1"),
    src=(ipv6.SRC.start, ADDRESS),
    dst=(ipv6.DST.start, ADDRESS),
)
_EXTENSION_HEADER = header_layout(  # the fragment fields only mean something in a fragment header
    MIN_EXTENSION_HEADER_LEN,
    next_header=(EXTENSION_NEXT_HEADER, "u1"),
    length=(EXTENSION_LENGTH, "u1"),
    fragment_offset=(ipv6.FRAGMENT_OFFSET, ">u2"),
    fragment_id=(ipv6.FRAGMENT_IDENTIFICATION.start, ">u4"),
)
_EXTENSIONS = np.array(sorted({*ipv6.GENERIC_EXTENSIONS, ipv6.AUTHENTICATION, ipv6.FRAGMENT}))
_MAPPED_PREFIX_WORDS = IPV4_MAPPED_PREFIX.view(np.uint32)


@dataclass(frozen=True)
class IpHeaders:
    """Frames whose whole IP header (options, extension headers) was captured and is consistent."""

    cursor: Cursor  # at the header that follows IP
    l3_offset: np.ndarray  # int64
    version: int
    ip_len: np.ndarray  # int64
    protocol: np.ndarray  # uint8
    src: np.ndarray  # ADDRESS (16-byte void), IPv4 mapped
    dst: np.ndarray  # ADDRESS
    fragment: np.ndarray  # bool
    fragment_id: np.ndarray  # uint32
    later_fragment: np.ndarray  # bool: offset > 0, the transport header is in another fragment

    def select(self, mask: np.ndarray) -> "IpHeaders":
        arrays = {f.name: getattr(self, f.name)[mask] for f in fields(self) if f.name not in ("cursor", "version")}
        return IpHeaders(self.cursor.select(mask), version=self.version, **arrays)


def parse_network_layer(start: NetworkStart, wirelen: np.ndarray, status: np.ndarray) -> tuple[IpHeaders, IpHeaders]:
    """IPv4 and IPv6 headers of the frames the link layer says carry IP; the rest get their reason in
    ``status``."""
    fit = start.cursor.fits(1)
    cursor, ethertype = start.cursor.keep(fit, status, Status.TRUNCATED), start.ethertype[fit]
    version = cursor.read(_VERSION)["version"] >> 4
    is_v4 = (version == 4) & ((ethertype == ethernet.ETHERTYPE_IPV4) | (ethertype == ANY_IP))
    is_v6 = (version == 6) & ((ethertype == ethernet.ETHERTYPE_IPV6) | (ethertype == ANY_IP))
    is_ip = is_v4 | is_v6
    cursor, is_v4 = cursor.keep(is_ip, status, Status.MALFORMED), is_v4[is_ip]
    return _parse_ipv4(cursor.select(is_v4), wirelen, status), _parse_ipv6(cursor.select(~is_v4), wirelen, status)


def _parse_ipv4(cursor: Cursor, wirelen: np.ndarray, status: np.ndarray) -> IpHeaders:
    cursor = cursor.keep(cursor.fits(ipv4.MIN_HEADER_LEN), status, Status.TRUNCATED)
    header = cursor.read(_IPV4_HEADER)
    header_len = (header["version_ihl"] & 0x0F).astype(np.int64) * 4
    malformed = header_len < ipv4.MIN_HEADER_LEN
    truncated = ~malformed & ~cursor.fits(header_len)  # options cut off
    status[cursor.rows[malformed]] = Status.MALFORMED
    status[cursor.rows[truncated]] = Status.TRUNCATED
    kept = ~(malformed | truncated)
    if not kept.all():
        cursor, header, header_len = cursor.select(kept), header[kept], header_len[kept]

    flags_fragment = header["flags_fragment"]
    later = (flags_fragment & ipv4.FRAGMENT_OFFSET_MASK) > 0
    return IpHeaders(
        cursor=cursor.advance(header_len),
        l3_offset=cursor.offset,
        version=4,
        ip_len=_ip_len(header["total_length"], header_len, _bytes_on_wire(cursor, wirelen)),
        protocol=header["protocol"],
        src=_ipv4_mapped(header["src"]),
        dst=_ipv4_mapped(header["dst"]),
        fragment=later | ((flags_fragment & ipv4.MORE_FRAGMENTS) > 0),
        fragment_id=header["identification"].astype(np.uint32),
        later_fragment=later,
    )


def _parse_ipv6(cursor: Cursor, wirelen: np.ndarray, status: np.ndarray) -> IpHeaders:
    cursor = cursor.keep(cursor.fits(ipv6.HEADER_LEN), status, Status.TRUNCATED)
    header = cursor.read(_IPV6_HEADER)
    payload_len = header["payload_length"].astype(np.int64)
    # Payload length 0 (jumbogram, segmentation offload) states nothing: fall back to the wire length.
    stated_len = np.where(payload_len > 0, ipv6.HEADER_LEN + payload_len, 0)
    headers = IpHeaders(
        cursor=cursor.advance(ipv6.HEADER_LEN),
        l3_offset=cursor.offset,
        version=6,
        ip_len=_ip_len(stated_len, ipv6.HEADER_LEN, _bytes_on_wire(cursor, wirelen)),
        protocol=header["next_header"],
        src=header["src"].copy(),
        dst=header["dst"].copy(),
        fragment=np.zeros(len(cursor), dtype=bool),
        fragment_id=np.zeros(len(cursor), dtype=np.uint32),
        later_fragment=np.zeros(len(cursor), dtype=bool),
    )
    return _walk_extension_headers(headers, status)


def _walk_extension_headers(headers: IpHeaders, status: np.ndarray) -> IpHeaders:
    """Follow the next-header chain through extension headers, a bounded number of steps, over only
    the frames still inside the chain. Stops at a non-first fragment: what follows is not a header."""
    pending = np.flatnonzero(np.isin(headers.protocol, _EXTENSIONS))
    if not len(pending):
        return headers
    cursor = headers.cursor
    at, protocol = cursor.at.copy(), headers.protocol.copy()
    fragment, fragment_id, later = headers.fragment.copy(), headers.fragment_id.copy(), headers.later_fragment.copy()
    truncated = np.zeros(len(cursor), dtype=bool)
    for _ in range(MAX_EXTENSION_HEADERS):
        ext = cursor.subset(pending, at)
        fit = ext.fits(MIN_EXTENSION_HEADER_LEN)
        truncated[ext.rows[~fit]] = True
        ext = ext.select(fit)
        header = ext.read(_EXTENSION_HEADER)
        kind = protocol[ext.rows]
        length_field = header["length"].astype(np.int64)
        header_len = np.where(
            kind == ipv6.AUTHENTICATION,
            (length_field + 2) * 4,
            np.where(kind == ipv6.FRAGMENT, ipv6.FRAGMENT_HEADER_LEN, (length_field + 1) * 8),
        )
        fit = ext.fits(header_len)
        truncated[ext.rows[~fit]] = True
        ext, kind, header, header_len = ext.select(fit), kind[fit], header[fit], header_len[fit]

        is_fragment = kind == ipv6.FRAGMENT
        frag_rows, offset_more = ext.rows[is_fragment], header["fragment_offset"][is_fragment]
        later[frag_rows] = (offset_more >> 3) > 0
        fragment[frag_rows] = later[frag_rows] | ((offset_more & ipv6.FRAGMENT_MORE) > 0)
        fragment_id[frag_rows] = header["fragment_id"][is_fragment]

        protocol[ext.rows] = header["next_header"]
        at[ext.rows] = ext.at + header_len
        pending = ext.rows[np.isin(protocol[ext.rows], _EXTENSIONS) & ~later[ext.rows]]
        if not len(pending):
            break
    too_deep = np.zeros(len(cursor), dtype=bool)
    too_deep[pending] = True  # longer chains than any real stack sends
    walked = IpHeaders(
        cursor.moved_to(at), headers.l3_offset, 6, headers.ip_len, protocol, headers.src, headers.dst,
        fragment, fragment_id, later,
    )
    status[cursor.rows[truncated]] = Status.TRUNCATED
    status[cursor.rows[too_deep]] = Status.MALFORMED
    return walked.select(~(truncated | too_deep))


def _bytes_on_wire(cursor: Cursor, wirelen: np.ndarray) -> np.ndarray:
    """Bytes from the cursor to the end of the frame as it was on the wire."""
    return wirelen[cursor.rows] - cursor.offset


def _ip_len(stated: np.ndarray, header_len, on_wire: np.ndarray) -> np.ndarray:
    """The stated IP length, or the wire length after the IP header start where the statement is absent
    (0, as segmentation offload writes it) or impossible (shorter than the header, longer than the wire)."""
    stated = stated.astype(np.int64)
    return np.where((stated >= header_len) & (stated <= on_wire), stated, on_wire)


def _ipv4_mapped(addresses: np.ndarray) -> np.ndarray:
    """4-byte addresses as 16-byte ::ffff:a.b.c.d, built as 32-bit words (faster than byte columns)."""
    words = np.empty((len(addresses), 4), dtype=np.uint32)
    words[:, :3] = _MAPPED_PREFIX_WORDS
    words[:, 3] = addresses.view(np.uint32)
    return words.view(ADDRESS).reshape(-1)
