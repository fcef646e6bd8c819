"""Link types with variable headers (PPP, Cisco HDLC, 802.11 with and without radiotap, NFLOG, pflog):
the same IP packets under each give the fields they give over Ethernet, offsets moved by the link header;
frames that carry no IP, or only part of a header, are counted under their reason.

`ENCAPSULATIONS` builds real frames of each link type (scapy where it has the layer, struct where not);
test_packets_properties.py and test_dataset_linktypes.py use it too.
"""

import struct

import numpy as np
import pytest
from scapy.layers.dot11 import Dot11, Dot11Beacon, Dot11Elt, Dot11QoS, RadioTap
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import LLC, SNAP, Ether
from scapy.layers.pflog import PFLog
from scapy.layers.ppp import HDLC, PPP

from etbert.capture.frames import FrameBatch
from etbert.packets.batch import Status
from etbert.packets.decode import decode, status_counts
from etbert.protocols import linktypes

MAC = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
STATIONS = dict(addr1=MAC["dst"], addr2=MAC["src"], addr3=MAC["src"])
FIELDS = ("status", "ip_version", "l3_offset", "l4_offset", "payload_offset", "ip_len", "protocol",
          "src", "dst", "sport", "dport", "tcp_flags", "fragment", "fragment_id")  # fmt: skip
OFFSETS = ("l3_offset", "l4_offset", "payload_offset")
IPV4, IPV6 = 0x0800, 0x86DD
PACKETS = [  # (ethertype, IP packet): TCP and UDP over both IP versions
    (IPV4, bytes(IP(src="192.0.2.1", dst="198.51.100.7", id=7) / TCP(sport=50000, dport=443, flags="PA") / b"hello")),
    (IPV4, bytes(IP(src="192.0.2.1", dst="198.51.100.7", id=8) / UDP(sport=5353, dport=53) / b"query")),
    (IPV6, bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / TCP(sport=40000, dport=22, flags="S"))),
    (IPV6, bytes(IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=4433, dport=443) / b"quic")),
]
FCS = b"\xde\xad\xbe\xef"


# --- frame builders: (ethertype, IP packet) -> (frame, offset of the IP header) -------------------------


def ppp(framed: bool, compressed: bool):
    def wrap(ethertype: int, packet: bytes):
        protocol = 0x21 if ethertype == IPV4 else 0x57
        header = (b"\xff\x03" if framed else b"") + (bytes([protocol]) if compressed else struct.pack(">H", protocol))
        return header + packet, len(header)

    return wrap


def ppp_scapy(ethertype: int, packet: bytes):
    frame = bytes(HDLC() / PPP(proto=0x0021 if ethertype == IPV4 else 0x0057))
    return frame + packet, len(frame)


def cisco_hdlc(ethertype: int, packet: bytes):
    return struct.pack(">BBH", 0x0F, 0, ethertype) + packet, 4


def llc_snap(ethertype: int) -> bytes:
    return bytes(LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0, code=ethertype))


def dot11(subtype=0, ds=0, order=False, radiotap=None, fcs=False):
    """An 802.11 data frame (QoS where subtype has bit 3), optionally behind a radiotap header."""

    def wrap(ethertype: int, packet: bytes):
        mac = Dot11(type=2, subtype=subtype, FCfield=ds | (0x80 if order else 0), **STATIONS)
        if subtype & 0x08:
            mac = mac / Dot11QoS(TID=5)
        header = bytes(mac) + (b"\0" * 4 if order and subtype & 0x08 else b"")  # HT control
        if radiotap is not None:
            header = radiotap + header
            if radiotap_flags(radiotap) & 0x20:  # DATAPAD: 802.11 header padded to 4 bytes
                header += b"\0" * (-(len(header) - len(radiotap)) % 4)
        header += llc_snap(ethertype)
        return header + packet + (FCS if fcs else b""), len(header)

    return wrap


def radiotap_flags(header: bytes) -> int:
    parsed = RadioTap(header)
    return int(parsed.Flags) if parsed.present & 0x2 else 0


def nflog(byte_order: str):
    """An NFLOG message as the kernel writes it, attributes in the capturing host's byte order."""

    def tlv(kind: int, value: bytes) -> bytes:
        raw = struct.pack(byte_order + "HH", 4 + len(value), kind) + value
        return raw + b"\0" * (-len(raw) % 4)

    def wrap(ethertype: int, packet: bytes):
        family = 2 if ethertype == IPV4 else 10
        header = struct.pack(">BBH", family, 0, 1)
        header += tlv(1, struct.pack(">HBB", ethertype, 3, 0))  # NFULA_PACKET_HDR
        header += tlv(10, b"etbert-")  # NFULA_PREFIX, padded
        header += tlv(3, struct.pack(">QQ", 1700000000, 5))  # NFULA_TIMESTAMP
        return header + tlv(9, packet), len(header) + 4

    return wrap


def pflog_scapy(ethertype: int, packet: bytes):
    header = bytes(PFLog(addrfamily=2 if ethertype == IPV4 else 24, iface=b"em0"))
    return header + packet, len(header)


def pflog(length: int, family6: int):
    """A pflog header of an older or other BSD layout: ``length`` stated, padded to a multiple of 4."""

    def wrap(ethertype: int, packet: bytes):
        header_len = (length + 3) // 4 * 4
        header = bytes([length, 2 if ethertype == IPV4 else family6]) + b"\0" * (header_len - 2)
        return header + packet, header_len

    return wrap


RADIOTAP_PLAIN = bytes(RadioTap())
RADIOTAP_TSFT_FCS = bytes(RadioTap(present="TSFT+Flags+Rate", Flags="FCS", Rate=2))
# Two presence words (bit 31), TSFT 8-aligned after them, Flags with FCS and DATAPAD.
RADIOTAP_EXTENDED = struct.pack("<BBHIIIQB", 0, 0, 32, 0x80000003, 0, 0, 1, 0x30) + b"\0" * 7

ENCAPSULATIONS = [  # (name, link type, frame builder)
    ("ppp", linktypes.PPP, ppp_scapy),
    ("ppp-no-address-control", linktypes.PPP, ppp(framed=False, compressed=False)),
    ("ppp-compressed-protocol", linktypes.PPP, ppp(framed=True, compressed=True)),
    ("ppp-all-compressed", linktypes.PPP, ppp(framed=False, compressed=True)),
    ("ppp-hdlc", linktypes.PPP_HDLC, ppp_scapy),
    ("ppp-hdlc-cisco", linktypes.PPP_HDLC, cisco_hdlc),
    ("cisco-hdlc", linktypes.C_HDLC, cisco_hdlc),
    ("dot11", linktypes.IEEE802_11, dot11()),
    ("dot11-qos-fcs", linktypes.IEEE802_11, dot11(subtype=8, ds=1, fcs=True)),
    ("radiotap", linktypes.IEEE802_11_RADIOTAP, dot11(radiotap=RADIOTAP_PLAIN)),
    ("radiotap-fcs", linktypes.IEEE802_11_RADIOTAP, dot11(subtype=8, ds=2, radiotap=RADIOTAP_TSFT_FCS, fcs=True)),
    ("radiotap-wds-ht", linktypes.IEEE802_11_RADIOTAP, dot11(subtype=8, ds=3, order=True, radiotap=RADIOTAP_PLAIN)),
    ("radiotap-datapad", linktypes.IEEE802_11_RADIOTAP, dot11(subtype=8, radiotap=RADIOTAP_EXTENDED, fcs=True)),
    ("nflog", linktypes.NFLOG, nflog("<")),
    ("nflog-big-endian", linktypes.NFLOG, nflog(">")),
    ("pflog", linktypes.PFLOG, pflog_scapy),
    ("pflog-61", linktypes.PFLOG, pflog(61, family6=28)),
    ("pflog-69", linktypes.PFLOG, pflog(69, family6=30)),
]


# --- decoding ---------------------------------------------------------------------------------------


def rows(linktypes_and_frames: list[tuple[int, bytes]]) -> list[dict]:
    packets = decode(FrameBatch.from_frames([(0, lt, frame) for lt, frame in linktypes_and_frames]))
    return [{name: np.asarray(getattr(packets, name)[i]).tolist() for name in FIELDS} for i in range(len(packets))]


def skip_reason(linktype: int, frame: bytes, wirelen: int | None = None) -> Status:
    packets = decode(FrameBatch.from_frames([(0, linktype, frame)], None if wirelen is None else [wirelen]))
    assert packets.l3_offset[0] == -1 and packets.sport[0] == 0
    return Status(packets.status[0])


def test_every_encapsulation_decodes_like_ethernet():
    """All frames in one batch, so link types mix and each one's rows are written back in place."""
    ethernet = [(linktypes.ETHERNET, bytes(Ether(type=ethertype, **MAC)) + packet) for ethertype, packet in PACKETS]
    expected = rows(ethernet)
    assert [r["status"] for r in expected] == [Status.OK] * 4
    frames, offsets = [], []
    for _, linktype, wrap in ENCAPSULATIONS:
        for ethertype, packet in PACKETS:
            frame, l3 = wrap(ethertype, packet)
            frames.append((linktype, frame))
            offsets.append(l3)
    decoded = rows(frames)
    for i, (row, l3) in enumerate(zip(decoded, offsets)):
        name = ENCAPSULATIONS[i // len(PACKETS)][0]
        reference = dict(expected[i % len(PACKETS)])
        for field in OFFSETS:
            reference[field] += l3 - 14
        assert row == reference, (name, i % len(PACKETS))


def test_scapy_reads_the_hand_built_frames_the_same_way():
    """The builders are checked against scapy's own dissectors where it has one (it has no DATAPAD)."""
    frame, l3 = dot11(subtype=8, ds=2, radiotap=RADIOTAP_TSFT_FCS, fcs=True)(IPV4, PACKETS[0][1])
    assert bytes(RadioTap(frame)[IP]) == PACKETS[0][1] and frame[l3] == 0x45
    extended = RadioTap(RADIOTAP_EXTENDED)
    assert (extended.len, int(extended.Flags), extended.mac_timestamp) == (32, 0x30, 1)
    frame, l3 = pflog_scapy(IPV6, PACKETS[3][1])
    assert bytes(PFLog(frame)[IPv6]) == PACKETS[3][1] and l3 == 100


def test_ppp_protocols_other_than_ip():
    lcp = bytes(HDLC() / PPP(proto=0xC021)) + b"\x01\x01\x00\x04"
    ipcp = bytes(PPP(proto=0x8021)) + b"\x01\x01\x00\x04"
    vj_compressed = b"\x2d" + b"\0" * 20  # compressed protocol field, Van Jacobson TCP: no IP header
    for frame in (lcp, ipcp, vj_compressed):
        for linktype in (linktypes.PPP, linktypes.PPP_HDLC):
            assert skip_reason(linktype, frame) == Status.NOT_IP
    slarp = struct.pack(">BBH", 0x8F, 0, 0x8035) + b"\0" * 20  # Cisco keepalive
    assert skip_reason(linktypes.C_HDLC, slarp) == Status.NOT_IP
    assert skip_reason(linktypes.PPP_HDLC, slarp) == Status.NOT_IP


def test_mpls_over_ppp_and_vlan_over_snap_walk_the_shim_headers():
    label = struct.pack(">I", (100 << 12) | 0x100 | 64)
    ip = PACKETS[0][1]
    batch = rows([
        (linktypes.PPP, b"\xff\x03\x02\x81" + label + ip),
        (linktypes.C_HDLC, struct.pack(">BBH", 0x0F, 0, 0x8847) + label + ip),
        (linktypes.IEEE802_11, dot11()(0x8100, struct.pack(">HH", 5, IPV4) + ip)[0]),
    ])  # fmt: skip
    assert [(r["status"], r["l3_offset"]) for r in batch] == [(Status.OK, 8), (Status.OK, 8), (Status.OK, 24 + 8 + 4)]


BEACON = bytes(RadioTap() / Dot11(type=0, subtype=8, **STATIONS) / Dot11Beacon() / Dot11Elt(ID=0, info=b"lab"))
DATA_V4 = dot11(subtype=8)(IPV4, PACKETS[0][1])[0]


def with_frame_control(frame: bytes, kind: int | None = None, flags: int | None = None) -> bytes:
    return bytes([frame[0] if kind is None else kind, frame[1] if flags is None else flags]) + frame[2:]


@pytest.mark.parametrize(
    "frame",
    [
        BEACON[len(RADIOTAP_PLAIN) :],
        bytes(Dot11(type=1, subtype=13, addr1=MAC["dst"]))[:10],  # ACK: a 10-byte control frame
        with_frame_control(DATA_V4, flags=0x40),  # protected: the body is encrypted
        with_frame_control(DATA_V4, kind=0xC8),  # QoS null function: no body
        DATA_V4[:22] + b"\x01\x00" + DATA_V4[24:],  # second fragment of an MSDU
        DATA_V4[:24] + b"\x85\x00" + DATA_V4[26:],  # A-MSDU: subframes, several packets in one frame
        DATA_V4[:26] + bytes(LLC(dsap=0x42, ssap=0x42, ctrl=3)) + DATA_V4[29:],  # spanning tree LLC
        DATA_V4[:26] + llc_snap(0x888E) + b"\x02\x03\x00\x5f" + b"\0" * 95,  # EAPOL key
        DATA_V4[:26] + bytes(LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(OUI=0x00000C, code=0x2000)) + b"\0" * 40,  # CDP
        with_frame_control(DATA_V4, kind=0x89),  # protocol version 1
    ],
    ids=["beacon", "ack", "protected", "qos-null", "fragment", "a-msdu", "stp", "eapol", "cisco-oui", "version-1"],
)
def test_802_11_frames_without_ip(frame):
    assert skip_reason(linktypes.IEEE802_11, frame) == Status.NOT_IP
    assert skip_reason(linktypes.IEEE802_11_RADIOTAP, RADIOTAP_PLAIN + frame) == Status.NOT_IP


def test_radiotap_headers_that_contradict_themselves_are_malformed():
    assert skip_reason(linktypes.IEEE802_11_RADIOTAP, b"\x01" + RADIOTAP_PLAIN[1:] + DATA_V4) == Status.MALFORMED
    short = RADIOTAP_PLAIN[:2] + struct.pack("<H", 6) + RADIOTAP_PLAIN[4:]
    assert skip_reason(linktypes.IEEE802_11_RADIOTAP, short + DATA_V4) == Status.MALFORMED
    bad_fcs = bytes(RadioTap(present="Flags", Flags="FCS+badFCS"))
    assert skip_reason(linktypes.IEEE802_11_RADIOTAP, bad_fcs + DATA_V4 + FCS) == Status.MALFORMED
    endless = struct.pack("<BBH", 0, 0, 48) + struct.pack("<I", 0x80000000) * 10  # presence words past the bound
    assert skip_reason(linktypes.IEEE802_11_RADIOTAP, endless + DATA_V4) == Status.MALFORMED
    no_room = struct.pack("<BBHI", 0, 0, 8, 0x2)  # announces Flags, ends before them
    assert skip_reason(linktypes.IEEE802_11_RADIOTAP, no_room + DATA_V4) == Status.MALFORMED


def nflog_message(*tlvs: tuple[int, bytes], family=2, order="<") -> bytes:
    message = struct.pack(">BBH", family, 0, 0)
    for kind, value in tlvs:
        raw = struct.pack(order + "HH", 4 + len(value), kind) + value
        message += raw + b"\0" * (-len(raw) % 4)
    return message


def test_nflog_without_payload_or_of_other_families_is_not_ip():
    assert skip_reason(linktypes.NFLOG, nflog_message((1, b"\x08\x00\x03\x00"), (10, b"drop"))) == Status.NOT_IP
    assert skip_reason(linktypes.NFLOG, nflog_message()) == Status.NOT_IP
    arp = nflog_message((9, b"\x00\x01\x08\x00\x06\x04\x00\x01"), family=3)
    assert skip_reason(linktypes.NFLOG, arp) == Status.NOT_IP


def test_nflog_attributes_that_cannot_be_walked():
    zero_length = nflog_message() + struct.pack("<HH", 0, 1) + b"\0" * 40
    assert skip_reason(linktypes.NFLOG, zero_length) == Status.MALFORMED
    endless = nflog_message(*[(10, b"")] * 40, (9, PACKETS[0][1]))  # more attributes than the walk bound
    assert skip_reason(linktypes.NFLOG, endless) == Status.MALFORMED
    cut = nflog_message((10, b"prefix"), (9, PACKETS[0][1]))
    assert skip_reason(linktypes.NFLOG, cut[:6], wirelen=len(cut)) == Status.TRUNCATED  # inside an attribute header


def test_nflog_payload_cut_by_the_snaplen_keeps_its_ip_header():
    frame, l3 = nflog("<")(IPV4, PACKETS[0][1])
    packets = decode(FrameBatch.from_frames([(0, linktypes.NFLOG, frame[: l3 + 40])], [len(frame)]))
    fields = (packets.status[0], packets.l3_offset[0], packets.sport[0], packets.payload_offset[0], packets.ip_len[0])
    assert fields == (Status.OK, l3, 50000, l3 + 40, 45)


def test_pflog_header_length_and_family():
    ip = PACKETS[0][1]
    assert skip_reason(linktypes.PFLOG, bytes([44, 2]) + b"\0" * 42 + ip) == Status.MALFORMED  # shorter than any layout
    assert skip_reason(linktypes.PFLOG, bytes(PFLog(addrfamily=17)) + ip) == Status.NOT_IP  # not an IP family
    assert skip_reason(linktypes.PFLOG, bytes(PFLog(addrfamily=2)) + PACKETS[2][1]) == Status.MALFORMED  # says v4, is v6


@pytest.mark.parametrize("name, linktype, wrap", ENCAPSULATIONS, ids=[e[0] for e in ENCAPSULATIONS])
def test_frames_cut_inside_the_link_header_are_truncated(name, linktype, wrap):
    frame, l3 = wrap(IPV4, PACKETS[0][1])
    for cut in sorted({0, 1, max(l3 - 3, 0), l3 - 1}):  # in the header, in its last field
        assert skip_reason(linktype, frame[:cut], wirelen=len(frame)) == Status.TRUNCATED, cut


def test_status_counts_of_a_mixed_capture():
    frames = [(lt, wrap(ethertype, packet)[0]) for _, lt, wrap in ENCAPSULATIONS[::4] for ethertype, packet in PACKETS]
    frames += [(linktypes.IEEE802_11_RADIOTAP, BEACON), (linktypes.PPP, b"\xc0\x21\x01")]  # beacon, LCP
    frames += [(linktypes.NFLOG, b"\x02\x00")]  # cut inside the NFLOG header
    counts = status_counts(decode(FrameBatch.from_frames([(0, lt, f) for lt, f in frames])))
    assert counts == {
        "ok": len(frames) - 3, "fragment": 0, "other_l4": 0, "not_ip": 2, "unknown_linktype": 0, "truncated": 1,
        "malformed": 0,
    }  # fmt: skip
