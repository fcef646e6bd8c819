"""Link layer: where the IP header of each frame starts, whatever the capture's link type."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from etbert.capture.frames import FrameBatch
from etbert.packets.batch import Status
from etbert.packets.cursor import Cursor, header_layout
from etbert.protocols import ethernet, linktypes, linux_sll, null

# Constants etbert.protocols does not (yet) define.
ETHERTYPE_PPPOE_SESSION = 0x8864
PPPOE_HEADER_LEN = 6  # version/type, code, session id, length; the 2-byte PPP protocol follows
PPP_PROTOCOL_LEN = 2
PPP_IPV4 = 0x0021
PPP_IPV6 = 0x0057
MPLS_ETHERTYPES = (0x8847, 0x8848)  # unicast, multicast
MPLS_LABEL_LEN = 4
MPLS_BOTTOM_OF_STACK = 0x01  # low bit of the label entry's third byte
AF_INET = 2
AF_INET6 = (10, 23, 24, 28, 30)  # Linux, Windows, Net/OpenBSD, FreeBSD, Darwin

# Internal "ethertype" values for what the link layer says follows it.
ANY_IP = -1  # IP of a version the link layer does not say (raw, null, MPLS): read the version nibble
NOT_IP = -2  # a non-IP protocol the link layer names in its own numbering (PPP, address family)

MAX_SHIM_HEADERS = 8  # stacked VLAN tags, PPPoE and MPLS labels walked before giving up

_ETHERTYPE_HEADERS = {  # link type -> header with an ethertype field
    linktypes.ETHERNET: header_layout(ethernet.HEADER_LEN, ethertype=(ethernet.ETHERTYPE, ">u2")),
    linktypes.LINUX_SLL: header_layout(linux_sll.SLL_HEADER_LEN, ethertype=(linux_sll.SLL_PROTOCOL, ">u2")),
    linktypes.LINUX_SLL2: header_layout(linux_sll.SLL2_HEADER_LEN, ethertype=(linux_sll.SLL2_PROTOCOL, ">u2")),
}
_HEADERLESS = {  # link type -> what follows, with no link header at all
    linktypes.RAW: ANY_IP,
    linktypes.RAW_OPENBSD: ANY_IP,
    linktypes.RAW_LEGACY: ANY_IP,
    linktypes.IPV4: ethernet.ETHERTYPE_IPV4,
    linktypes.IPV6: ethernet.ETHERTYPE_IPV6,
}
_FAMILY_HEADER = header_layout(null.HEADER_LEN, family=(0, "<u4"))
_IP_FAMILIES = np.array([AF_INET, *AF_INET6], dtype=np.uint32)

_VLAN_TAG = header_layout(ethernet.VLAN_TAG_LEN, ethertype=(ethernet.VLAN_TAG_LEN - 2, ">u2"))
_PPPOE = header_layout(PPPOE_HEADER_LEN + PPP_PROTOCOL_LEN, ppp_protocol=(PPPOE_HEADER_LEN, ">u2"))
_MPLS_LABEL = header_layout(MPLS_LABEL_LEN, bottom=(2, "u1"))  # S bit in the third byte
_FIRST_BYTE = header_layout(1, byte=(0, "u1"))


@dataclass(frozen=True)
class NetworkStart:
    """Frames whose link layer announces IP, with the cursor at the IP header."""

    cursor: Cursor
    ethertype: np.ndarray  # int32: ETHERTYPE_IPV4, ETHERTYPE_IPV6 or ANY_IP


def locate_network_layer(frames: FrameBatch, status: np.ndarray) -> NetworkStart:
    """Walk link headers; frames that do not carry IP get their reason in ``status``.

    Frames of a link type not handled here are left untouched (the caller's default status).
    """
    parts = []
    for linktype in linktypes.SUPPORTED:
        rows = np.flatnonzero(frames.linktype == linktype)
        if len(rows):
            parts.append(_link_header(Cursor.frame_starts(frames, rows), linktype, status))
    if not parts:  # no frame of a known link type
        return NetworkStart(Cursor.frame_starts(frames, np.zeros(0, dtype=np.int64)), np.zeros(0, dtype=np.int32))
    cursor = Cursor.concat([p.cursor for p in parts])
    ethertype = np.concatenate([p.ethertype for p in parts]) if len(parts) > 1 else parts[0].ethertype
    cursor, ethertype = _skip_shim_headers(cursor, ethertype, status)
    is_ip = (ethertype == ethernet.ETHERTYPE_IPV4) | (ethertype == ethernet.ETHERTYPE_IPV6) | (ethertype == ANY_IP)
    return NetworkStart(cursor.keep(is_ip, status, Status.NOT_IP), ethertype[is_ip])


def _link_header(cursor: Cursor, linktype: int, status: np.ndarray) -> NetworkStart:
    """What follows the link header: an ethertype field, a BSD address family (null, loop), or for
    headerless link types what the link type itself says."""
    if linktype in _HEADERLESS:
        return NetworkStart(cursor, np.full(len(cursor), _HEADERLESS[linktype], dtype=np.int32))
    layout = _ETHERTYPE_HEADERS.get(linktype, _FAMILY_HEADER)
    cursor = cursor.keep(cursor.fits(layout.itemsize), status, Status.TRUNCATED)
    header = cursor.read(layout)
    if linktype in _ETHERTYPE_HEADERS:
        ethertype = header["ethertype"].astype(np.int32)
    else:
        ethertype = _family_to_ethertype(header["family"])
    return NetworkStart(cursor.advance(layout.itemsize), ethertype)


def _family_to_ethertype(family: np.ndarray) -> np.ndarray:
    """BSD loopback: the family's byte order is the capturing host's, so accept IP families in either
    order and leave the IP version to the header's own nibble."""
    is_ip = np.isin(family, _IP_FAMILIES) | np.isin(family.byteswap(), _IP_FAMILIES)
    return np.where(is_ip, ANY_IP, NOT_IP).astype(np.int32)


def _vlan_next(cursor: Cursor) -> np.ndarray:
    return cursor.read(_VLAN_TAG)["ethertype"].astype(np.int32)


def _pppoe_next(cursor: Cursor) -> np.ndarray:
    ppp = cursor.read(_PPPOE)["ppp_protocol"]
    return np.select([ppp == PPP_IPV4, ppp == PPP_IPV6], [ethernet.ETHERTYPE_IPV4, ethernet.ETHERTYPE_IPV6], NOT_IP)


def _mpls_next(cursor: Cursor) -> np.ndarray:
    """Another label, or at the bottom of the stack IP (told by its nibble) or something else
    (an Ethernet pseudowire, say). A payload cut before its first byte is left to the IP layer to call
    truncated."""
    bottom = (cursor.read(_MPLS_LABEL)["bottom"] & MPLS_BOTTOM_OF_STACK).astype(bool)
    payload_seen = cursor.fits(MPLS_LABEL_LEN + 1)
    version = np.zeros(len(cursor), dtype=np.uint8)
    version[payload_seen] = cursor.select(payload_seen).advance(MPLS_LABEL_LEN).read(_FIRST_BYTE)["byte"] >> 4
    payload = np.where(~payload_seen | (version == 4) | (version == 6), ANY_IP, NOT_IP)
    return np.where(bottom, payload, MPLS_ETHERTYPES[0])


_SHIMS = (  # (ethertypes, header length, what follows)
    (tuple(ethernet.VLAN_ETHERTYPES), ethernet.VLAN_TAG_LEN, _vlan_next),
    ((ETHERTYPE_PPPOE_SESSION,), PPPOE_HEADER_LEN + PPP_PROTOCOL_LEN, _pppoe_next),
    (MPLS_ETHERTYPES, MPLS_LABEL_LEN, _mpls_next),
)
_SHIM_ETHERTYPES = np.array([t for types, _, _ in _SHIMS for t in types])


def _skip_shim_headers(cursor: Cursor, ethertype: np.ndarray, status: np.ndarray) -> tuple[Cursor, np.ndarray]:
    """Step over VLAN tags, PPPoE and MPLS labels, a bounded number of times, only where present."""
    pending = np.flatnonzero(np.isin(ethertype, _SHIM_ETHERTYPES))
    if not len(pending):
        return cursor, ethertype
    at, ethertype = cursor.at.copy(), ethertype.astype(np.int32)
    truncated = np.zeros(len(cursor), dtype=bool)
    for _ in range(MAX_SHIM_HEADERS):
        current = ethertype[pending]
        for types, header_len, next_ethertype in _SHIMS:
            here = pending[np.isin(current, types)]
            shim = cursor.subset(here, at)
            fit = shim.fits(header_len)
            truncated[here[~fit]] = True
            shim = shim.select(fit)
            ethertype[shim.rows] = next_ethertype(shim)
            at[shim.rows] = shim.at + header_len
        pending = pending[np.isin(ethertype[pending], _SHIM_ETHERTYPES) & ~truncated[pending]]
        if not len(pending):
            break
    too_deep = np.zeros(len(cursor), dtype=bool)
    too_deep[pending] = True  # more shims than any real network stacks
    status[cursor.rows[truncated]] = Status.TRUNCATED
    status[cursor.rows[too_deep]] = Status.MALFORMED
    kept = ~(truncated | too_deep)
    return cursor.moved_to(at).select(kept), ethertype[kept]
