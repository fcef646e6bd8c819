"""Link layer: where the IP header of each frame starts, whatever the capture's link type."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from etbert.capture.frames import FrameBatch
from etbert.packets.batch import Status
from etbert.packets.cursor import Cursor, header_layout
from etbert.protocols import (
    cisco_hdlc, ethernet, ieee80211, linktypes, linux_sll, llc, nflog, null, pflog, ppp, radiotap,
)  # fmt: skip

# Constants etbert.protocols does not (yet) define.
MPLS_ETHERTYPES = (0x8847, 0x8848)  # unicast, multicast
MPLS_LABEL_LEN = 4
MPLS_BOTTOM_OF_STACK = 0x01  # low bit of the label entry's third byte

# Internal "ethertype" values for what the link layer says follows it.
ANY_IP = -1  # IP of a version the link layer does not say (raw, null, MPLS): read the version nibble
NOT_IP = -2  # a non-IP protocol the link layer names in its own numbering (PPP, address family)

MAX_SHIM_HEADERS = 8  # stacked VLAN tags, PPPoE and MPLS labels walked before giving up

_ETHERTYPE_HEADERS = {  # link type -> header with an ethertype field
    linktypes.ETHERNET: header_layout(ethernet.HEADER_LEN, ethertype=(ethernet.ETHERTYPE, ">u2")),
    linktypes.LINUX_SLL: header_layout(linux_sll.SLL_HEADER_LEN, ethertype=(linux_sll.SLL_PROTOCOL, ">u2")),
    linktypes.LINUX_SLL2: header_layout(linux_sll.SLL2_HEADER_LEN, ethertype=(linux_sll.SLL2_PROTOCOL, ">u2")),
    linktypes.C_HDLC: header_layout(cisco_hdlc.HEADER_LEN, ethertype=(cisco_hdlc.PROTOCOL, ">u2")),
}
_HEADERLESS = {  # link type -> what follows, with no link header at all
    linktypes.RAW: ANY_IP,
    linktypes.RAW_OPENBSD: ANY_IP,
    linktypes.RAW_LEGACY: ANY_IP,
    linktypes.IPV4: ethernet.ETHERTYPE_IPV4,
    linktypes.IPV6: ethernet.ETHERTYPE_IPV6,
}
_FAMILY_HEADER = header_layout(null.HEADER_LEN, family=(0, "<u4"))
_IP_FAMILIES = np.array([null.AF_INET, *null.AF_INET6], dtype=np.uint32)

_VLAN_TAG = header_layout(ethernet.VLAN_TAG_LEN, ethertype=(ethernet.VLAN_TAG_LEN - 2, ">u2"))
_PPPOE = header_layout(ppp.PPPOE_HEADER_LEN + ppp.PROTOCOL_LEN, ppp_protocol=(ppp.PPPOE_HEADER_LEN, ">u2"))
_MPLS_LABEL = header_layout(MPLS_LABEL_LEN, bottom=(2, "u1"))  # S bit in the third byte
_BYTE = header_layout(1, byte=(0, "u1"))
_BIG_ENDIAN_U16 = header_layout(2, value=(0, ">u2"))
_LITTLE_ENDIAN_U16 = header_layout(2, value=(0, "<u2"))
_LITTLE_ENDIAN_U32 = header_layout(4, value=(0, "<u4"))

_RADIOTAP = header_layout(
    radiotap.HEADER_LEN,
    version=(radiotap.VERSION, "u1"),
    length=(radiotap.LENGTH, "<u2"),
    present=(radiotap.PRESENT, "<u4"),
)
_FRAME_CONTROL = header_layout(2, kind=(ieee80211.FRAME_CONTROL, "u1"), flags=(ieee80211.FLAGS, "u1"))
_LLC_SNAP = header_layout(
    llc.HEADER_LEN,
    dsap=(llc.DSAP, "u1"),
    ssap=(llc.SSAP, "u1"),
    control_oui=(llc.CONTROL, ">u4"),  # the control byte, then the 3-byte OUI
    ethertype=(llc.ETHERTYPE, ">u2"),
)
_NFLOG_TLV = header_layout(
    nflog.TLV_HEADER_LEN, length=(nflog.TLV_LENGTH, "<u2"), type=(nflog.TLV_TYPE, "<u2")
)
_PFLOG = header_layout(pflog.FAMILY + 1, length=(pflog.LENGTH, "u1"), family=(pflog.FAMILY, "u1"))


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
    """What follows the link header: an ethertype field, a BSD address family (null, loop), what a
    variable-length link header (PPP, 802.11, NFLOG, pflog) names, or for headerless link types what
    the link type itself says."""
    if linktype in _HEADERLESS:
        return NetworkStart(cursor, np.full(len(cursor), _HEADERLESS[linktype], dtype=np.int32))
    if linktype in _VARIABLE_HEADERS:
        return _VARIABLE_HEADERS[linktype](cursor, status)
    layout = _ETHERTYPE_HEADERS.get(linktype, _FAMILY_HEADER)
    cursor = cursor.keep(cursor.fits(layout.itemsize), status, Status.TRUNCATED)
    header = cursor.read(layout)
    if linktype in _ETHERTYPE_HEADERS:
        ethertype = header["ethertype"].astype(np.int32)
    else:
        ethertype = _family_to_ethertype(header["family"])
    return NetworkStart(cursor.advance(layout.itemsize), ethertype)


def _keep(cursor: Cursor, mask: np.ndarray, status: np.ndarray, reason: int, *arrays: np.ndarray) -> tuple:
    """``cursor.keep`` and the same selection of per-frame ``arrays``."""
    return cursor.keep(mask, status, reason), *(array[mask] for array in arrays)


def _read_captured(cursor: Cursor, layout: np.dtype, offset=0, where=None) -> np.ndarray:
    """``layout`` at ``offset`` bytes (int or per frame) past the cursor in the frames where it was
    captured and ``where`` holds; zeros in the others."""
    seen = cursor.fits(offset + layout.itemsize)
    if where is not None:
        seen &= where
    values = np.zeros(len(cursor), dtype=layout)
    values[seen] = cursor.select(seen).advance(offset if np.ndim(offset) == 0 else offset[seen]).read(layout)
    return values


def _family_to_ethertype(family: np.ndarray) -> np.ndarray:
    """BSD loopback: the family's byte order is the capturing host's, so accept IP families in either
    order and leave the IP version to the header's own nibble."""
    is_ip = np.isin(family, _IP_FAMILIES) | np.isin(family.byteswap(), _IP_FAMILIES)
    return np.where(is_ip, ANY_IP, NOT_IP).astype(np.int32)


def _ppp_to_ethertype(protocol: np.ndarray) -> np.ndarray:
    """PPP protocol numbers (PPP, PPPoE) in the ethertype numbering the rest of the decoder reads."""
    return np.select(
        [protocol == ppp.PROTOCOL_IPV4, protocol == ppp.PROTOCOL_IPV6, np.isin(protocol, ppp.PROTOCOL_MPLS)],
        [ethernet.ETHERTYPE_IPV4, ethernet.ETHERTYPE_IPV6, MPLS_ETHERTYPES[0]],
        NOT_IP,
    ).astype(np.int32)


def _ppp(cursor: Cursor, status: np.ndarray) -> NetworkStart:
    """PPP with or without the address and control bytes, with a 2- or (compressed) 1-byte protocol
    field; and Cisco HDLC frames, which PPP-serial captures mix in and which no PPP frame starts like."""
    cursor = cursor.keep(cursor.fits(1), status, Status.TRUNCATED)
    address = cursor.read(_BYTE)["byte"]
    cisco = np.isin(address, cisco_hdlc.ADDRESSES)
    protocol_at = np.where(address == ppp.ADDRESS, ppp.FRAMING_LEN, 0)
    compressed = ~cisco & ((_read_captured(cursor, _BYTE, protocol_at)["byte"] & 1) == 1)
    header_len = np.where(cisco, cisco_hdlc.HEADER_LEN, protocol_at + np.where(compressed, 1, ppp.PROTOCOL_LEN))
    fit = cursor.fits(header_len)
    cursor, cisco, compressed, header_len = _keep(cursor, fit, status, Status.TRUNCATED, cisco, compressed, header_len)
    # The protocol field ends the header: its last byte, or both, in PPP or ethertype numbering.
    last = cursor.advance(header_len - 1).read(_BYTE)["byte"].astype(np.int32)
    whole = _read_captured(cursor, _BIG_ENDIAN_U16, header_len - 2, where=~compressed)["value"].astype(np.int32)
    protocol = np.where(compressed, last, whole)
    ethertype = np.where(cisco, protocol, _ppp_to_ethertype(protocol))
    return NetworkStart(cursor.advance(header_len), ethertype.astype(np.int32))


def _radiotap(cursor: Cursor, status: np.ndarray) -> NetworkStart:
    """Radiotap header, then the 802.11 frame its length points to, read as its Flags field says."""
    cursor = cursor.keep(cursor.fits(radiotap.HEADER_LEN), status, Status.TRUNCATED)
    header = cursor.read(_RADIOTAP)
    length = header["length"].astype(np.int64)
    valid = (header["version"] == 0) & (length >= radiotap.HEADER_LEN)
    cursor, header, length = _keep(cursor, valid, status, Status.MALFORMED, header, length)
    fit = cursor.fits(length)
    cursor, header, length = _keep(cursor, fit, status, Status.TRUNCATED, header, length)
    flags, found = _radiotap_flags(cursor, header["present"], length)
    cursor, flags, length = _keep(cursor, found, status, Status.MALFORMED, flags, length)
    # A frame the radio says failed its FCS check has corrupt bytes somewhere: no flow should learn from it.
    intact = (flags & radiotap.FLAG_BAD_FCS) == 0
    cursor, flags, length = _keep(cursor, intact, status, Status.MALFORMED, flags, length)
    # A trailing FCS (FLAG_FCS) is left where it is: the IP header's own length ends the packet before it.
    return _ieee80211(cursor.advance(length), status, datapad=(flags & radiotap.FLAG_DATAPAD) > 0)


def _radiotap_flags(cursor: Cursor, present: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The radiotap Flags byte (0 where absent), and whether the header held what its presence words
    announce. Fields start after the chain of presence words, TSFT (8 bytes, 8-aligned) first, then Flags."""
    fields_at = np.full(len(cursor), radiotap.HEADER_LEN, dtype=np.int64)  # from the radiotap start
    found = np.ones(len(cursor), dtype=bool)
    pending = np.flatnonzero(present & radiotap.PRESENT_EXTENDED)
    for _ in range(radiotap.MAX_PRESENT_WORDS):
        if not len(pending):
            break
        inside = fields_at[pending] + radiotap.PRESENT_WORD_LEN <= length[pending]
        found[pending[~inside]] = False
        pending = pending[inside]
        word = cursor.subset(pending, cursor.at + fields_at).read(_LITTLE_ENDIAN_U32)["value"]
        fields_at[pending] += radiotap.PRESENT_WORD_LEN
        pending = pending[(word & radiotap.PRESENT_EXTENDED) > 0]
    found[pending] = False  # more presence words than any driver writes
    tsft = (present & radiotap.PRESENT_TSFT) > 0
    align = radiotap.TSFT_LEN - 1
    flags_at = np.where(tsft, ((fields_at + align) & ~align) + radiotap.TSFT_LEN, fields_at)
    has_flags = (present & radiotap.PRESENT_FLAGS) > 0
    found &= ~has_flags | (flags_at < length)
    flags = _read_captured(cursor, _BYTE, flags_at, where=has_flags & found)["byte"]
    return flags, found


def _ieee80211(cursor: Cursor, status: np.ndarray, datapad=False) -> NetworkStart:
    """802.11 data frames: MAC header (24 to 36 bytes, padded to 4 where radiotap says so), LLC/SNAP,
    then the ethertype's protocol. Management, control, null, encrypted frames and later fragments
    carry no IP header; neither does an A-MSDU's body in a form one packet per frame can hold."""
    datapad = np.broadcast_to(datapad, len(cursor))
    fit = cursor.fits(2)
    cursor, datapad = _keep(cursor, fit, status, Status.TRUNCATED, datapad)
    control = cursor.read(_FRAME_CONTROL)
    subtype, flags = control["kind"] >> ieee80211.SUBTYPE_SHIFT, control["flags"]
    data = (
        ((control["kind"] & ieee80211.TYPE_VERSION_MASK) == ieee80211.TYPE_DATA)
        & ((subtype & ieee80211.SUBTYPE_NO_BODY) == 0)
        & ((flags & ieee80211.PROTECTED) == 0)
    )
    cursor, subtype, flags, datapad = _keep(cursor, data, status, Status.NOT_IP, subtype, flags, datapad)
    qos = (subtype & ieee80211.SUBTYPE_QOS) > 0
    four_addresses = (flags & (ieee80211.TO_DS | ieee80211.FROM_DS)) == (ieee80211.TO_DS | ieee80211.FROM_DS)
    qos_at = ieee80211.QOS_CONTROL + np.where(four_addresses, ieee80211.ADDRESS4_LEN, 0)
    header_len = np.where(qos, qos_at + ieee80211.QOS_CONTROL_LEN, qos_at)
    header_len += np.where(qos & ((flags & ieee80211.ORDER) > 0), ieee80211.HT_CONTROL_LEN, 0)
    align = radiotap.DATAPAD_ALIGN - 1
    header_len = np.where(datapad, (header_len + align) & ~align, header_len)
    fit = cursor.fits(header_len)
    cursor, qos, qos_at, header_len = _keep(cursor, fit, status, Status.TRUNCATED, qos, qos_at, header_len)

    sequence = cursor.advance(ieee80211.SEQUENCE_CONTROL).read(_LITTLE_ENDIAN_U16)["value"]
    amsdu = (_read_captured(cursor, _BYTE, qos_at, where=qos)["byte"] & ieee80211.QOS_AMSDU) > 0
    whole = ((sequence & ieee80211.FRAGMENT_NUMBER_MASK) == 0) & ~amsdu
    cursor, header_len = _keep(cursor, whole, status, Status.NOT_IP, header_len)
    fit = cursor.fits(header_len + llc.HEADER_LEN)
    cursor, header_len = _keep(cursor, fit, status, Status.TRUNCATED, header_len)
    snap = cursor.advance(header_len).read(_LLC_SNAP)
    control_oui = snap["control_oui"]
    is_snap = (
        (snap["dsap"] == llc.SAP_SNAP)
        & (snap["ssap"] == llc.SAP_SNAP)
        & ((control_oui >> 24) == llc.CONTROL_UNNUMBERED)
        & np.isin(control_oui & 0xFFFFFF, llc.OUIS_WITH_ETHERTYPE)
    )
    ethertype = np.where(is_snap, snap["ethertype"].astype(np.int32), NOT_IP).astype(np.int32)
    return NetworkStart(cursor.advance(header_len + llc.HEADER_LEN), ethertype)


def _nflog(cursor: Cursor, status: np.ndarray) -> NetworkStart:
    """The NFULA_PAYLOAD attribute's value, found by walking the attributes a bounded number of steps."""
    cursor = cursor.keep(cursor.fits(nflog.HEADER_LEN), status, Status.TRUNCATED)
    family = cursor.read(_BYTE)["byte"]
    ip_family = (family == nflog.FAMILY_IPV4) | (family == nflog.FAMILY_IPV6)
    cursor, family = _keep(cursor, ip_family, status, Status.NOT_IP, family)
    at = cursor.at + nflog.HEADER_LEN
    # Attribute types are small numbers: a first type that is not one under little endian was written
    # by a big-endian host.
    first_type = _read_captured(cursor.moved_to(at), _NFLOG_TLV)["type"]
    big_endian = (first_type & nflog.TLV_TYPE_MASK) > nflog.MAX_TLV_TYPE
    outcome = np.full(len(cursor), Status.MALFORMED, dtype=np.uint8)  # for frames still walking at the bound
    pending = np.arange(len(cursor))
    for _ in range(nflog.MAX_TLVS):
        tlv = cursor.subset(pending, at)
        fit = tlv.fits(nflog.TLV_HEADER_LEN)
        # No attribute header left: a message that ended without a payload, or one cut inside it (one cut
        # exactly between attributes reads as ended).
        outcome[pending[~fit]] = np.where(tlv.at[~fit] >= tlv.end[~fit], Status.NOT_IP, Status.TRUNCATED)
        tlv, pending = tlv.select(fit), pending[fit]
        header = tlv.read(_NFLOG_TLV)
        swap = big_endian[pending]
        length = np.where(swap, header["length"].byteswap(), header["length"]).astype(np.int64)
        kind = np.where(swap, header["type"].byteswap(), header["type"]) & nflog.TLV_TYPE_MASK
        payload = kind == nflog.TYPE_PAYLOAD
        outcome[pending[payload]] = Status.OK
        too_short = ~payload & (length < nflog.TLV_HEADER_LEN)  # would never move on
        outcome[pending[too_short]] = Status.MALFORMED
        align = nflog.TLV_ALIGN - 1
        at[pending] = np.where(payload, tlv.at + nflog.TLV_HEADER_LEN, tlv.at + ((length + align) & ~align))
        pending = pending[~payload & ~too_short]
        if not len(pending):
            break
    for reason in (Status.NOT_IP, Status.TRUNCATED, Status.MALFORMED):
        status[cursor.rows[outcome == reason]] = reason
    found = outcome == Status.OK
    ethertype = np.where(family == nflog.FAMILY_IPV4, ethernet.ETHERTYPE_IPV4, ethernet.ETHERTYPE_IPV6)
    return NetworkStart(cursor.moved_to(at).select(found), ethertype[found].astype(np.int32))


def _pflog(cursor: Cursor, status: np.ndarray) -> NetworkStart:
    """pflog: the header states its own length; the IP version is the address family's."""
    cursor = cursor.keep(cursor.fits(_PFLOG.itemsize), status, Status.TRUNCATED)
    header = cursor.read(_PFLOG)
    valid = header["length"] >= pflog.MIN_LENGTH
    cursor, header = _keep(cursor, valid, status, Status.MALFORMED, header)
    align = pflog.ALIGN - 1
    header_len = (header["length"].astype(np.int64) + align) & ~align
    fit = cursor.fits(header_len)
    cursor, header_len, family = _keep(cursor, fit, status, Status.TRUNCATED, header_len, header["family"])
    ethertype = np.select(
        [family == null.AF_INET, np.isin(family, null.AF_INET6)],
        [ethernet.ETHERTYPE_IPV4, ethernet.ETHERTYPE_IPV6],
        NOT_IP,
    )
    return NetworkStart(cursor.advance(header_len), ethertype.astype(np.int32))


_VARIABLE_HEADERS = {  # link type -> parser of a header whose length depends on its fields
    linktypes.PPP: _ppp,
    linktypes.PPP_HDLC: _ppp,
    linktypes.IEEE802_11: _ieee80211,
    linktypes.IEEE802_11_RADIOTAP: _radiotap,
    linktypes.NFLOG: _nflog,
    linktypes.PFLOG: _pflog,
}


def _vlan_next(cursor: Cursor) -> np.ndarray:
    return cursor.read(_VLAN_TAG)["ethertype"].astype(np.int32)


def _pppoe_next(cursor: Cursor) -> np.ndarray:
    return _ppp_to_ethertype(cursor.read(_PPPOE)["ppp_protocol"])


def _mpls_next(cursor: Cursor) -> np.ndarray:
    """Another label, or at the bottom of the stack IP (told by its nibble) or something else
    (an Ethernet pseudowire, say). A payload cut before its first byte is left to the IP layer to call
    truncated."""
    bottom = (cursor.read(_MPLS_LABEL)["bottom"] & MPLS_BOTTOM_OF_STACK).astype(bool)
    payload_seen = cursor.fits(MPLS_LABEL_LEN + 1)
    version = _read_captured(cursor, _BYTE, MPLS_LABEL_LEN)["byte"] >> 4
    payload = np.where(~payload_seen | (version == 4) | (version == 6), ANY_IP, NOT_IP)
    return np.where(bottom, payload, MPLS_ETHERTYPES[0])


_SHIMS = (  # (ethertypes, header length, what follows)
    (tuple(ethernet.VLAN_ETHERTYPES), ethernet.VLAN_TAG_LEN, _vlan_next),
    ((ppp.ETHERTYPE_PPPOE_SESSION,), ppp.PPPOE_HEADER_LEN + ppp.PROTOCOL_LEN, _pppoe_next),
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
