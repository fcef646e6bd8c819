"""The vectorised decoder on frames built with scapy, one case per link type and header variant.

Every test compares all PacketBatch fields of the frame; `expect` fills the "none" values
(offsets -1, everything else 0) that a layer the frame did not reach leaves behind.
"""

import ipaddress
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    MIP6MH_BRR,
    fragment6,
)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.packet import Raw

from etbert.capture.frames import FrameBatch
from etbert.packets.addresses import format_address, format_addresses, is_ipv4_mapped
from etbert.packets.batch import Status
from etbert.packets.decode import decode, status_counts
from etbert.protocols import linktypes

MAC = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
V4 = dict(src="192.0.2.1", dst="198.51.100.7")
V6 = dict(src="2001:db8::1", dst="2001:db8:0:1::2")
FIELDS = ("status", "ip_version", "l3_offset", "l4_offset", "payload_offset", "ip_len", "protocol",
          "src", "dst", "sport", "dport", "tcp_flags", "fragment", "fragment_id")  # fmt: skip


def expect(status: Status, **fields) -> dict:
    none = dict(ip_version=0, l3_offset=-1, l4_offset=-1, payload_offset=-1, ip_len=0, protocol=0,
                src="::", dst="::", sport=0, dport=0, tcp_flags=0, fragment=False, fragment_id=0)  # fmt: skip
    return {"status": status, **none, **fields}


def decoded(batch: FrameBatch) -> list[dict]:
    packets = decode(batch)
    assert len(packets) == len(batch) and packets.frames is batch
    rows = []
    for i in range(len(packets)):
        row = {name: getattr(packets, name)[i].item() for name in FIELDS if name not in ("src", "dst")}
        row["status"] = Status(row["status"])
        row["src"], row["dst"] = format_address(packets.src[i]), format_address(packets.dst[i])
        rows.append(row)
    return rows


def decode_one(linktype: int, frame, wirelen: int | None = None) -> dict:
    frame = bytes(frame)
    batch = FrameBatch.from_frames([(0, linktype, frame)], None if wirelen is None else [wirelen])
    return decoded(batch)[0]


def tcp_ok(l3: int, l4: int, payload: int, ip_len: int, sport=1234, dport=443, flags=0x02, fragment_id=1, **kw):
    fields = dict(ip_version=4, l3_offset=l3, l4_offset=l4, payload_offset=payload, ip_len=ip_len, protocol=6,
                  sport=sport, dport=dport, tcp_flags=flags, fragment_id=fragment_id, **V4)  # fmt: skip
    return expect(Status.OK, **{**fields, **kw})


SYN = TCP(sport=1234, dport=443, flags="S")
TCP_OPTIONS = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("SAckOK", b""), ("Timestamp", (1, 2))]


# --- link types ------------------------------------------------------------------------------------


def test_ethernet_ipv4_tcp_with_options_and_payload():
    frame = Ether(**MAC) / IP(id=4242, **V4) / TCP(sport=50000, dport=443, flags="PA", options=TCP_OPTIONS) / Raw(b"x" * 30)
    assert decode_one(linktypes.ETHERNET, frame) == tcp_ok(
        14, 34, 34 + 40, 20 + 40 + 30, sport=50000, dport=443, flags=0x18, fragment_id=4242
    )


@pytest.mark.parametrize(
    "tags",
    [
        [Dot1Q(vlan=10)],
        [Dot1AD(vlan=100), Dot1Q(vlan=10)],
        [Dot1Q(vlan=1), Dot1Q(vlan=2), Dot1Q(vlan=3), Dot1Q(vlan=4)],
    ],
    ids=["802.1Q", "802.1ad-QinQ", "four-tags"],
)
def test_stacked_vlan_tags_are_skipped(tags):
    frame = Ether(**MAC)
    for tag in tags:
        frame = frame / tag
    frame = frame / IP(**V4) / SYN
    l3 = 14 + 4 * len(tags)
    assert decode_one(linktypes.ETHERNET, frame) == tcp_ok(l3, l3 + 20, l3 + 40, 40)


def test_legacy_qinq_ethertype_0x9100():
    frame = Ether(type=0x9100, **MAC) / Dot1Q(vlan=7) / IP(**V4) / SYN  # one tag: 0x9100 + TCI + 0x0800
    assert decode_one(linktypes.ETHERNET, frame) == tcp_ok(18, 38, 58, 40)


def test_linux_sll():
    frame = CookedLinux() / IP(**V4) / SYN
    assert len(CookedLinux()) == 16
    assert decode_one(linktypes.LINUX_SLL, frame) == tcp_ok(16, 36, 56, 40)


@pytest.mark.parametrize("build", ["scapy", "by-hand"])
def test_linux_sll2(build):
    if build == "scapy":
        header = bytes(CookedLinuxV2(proto=0x86DD))
    else:  # protocol, reserved, ifindex, hatype, pkttype, halen, 8-byte address
        header = struct.pack(">HHIHBB8s", 0x86DD, 0, 3, 1, 0, 6, b"\x02" * 6 + b"\0\0")
    assert len(header) == 20
    frame = header + bytes(IPv6(**V6) / UDP(sport=5353, dport=53) / Raw(b"q" * 12))
    assert decode_one(linktypes.LINUX_SLL2, frame) == expect(
        Status.OK, ip_version=6, l3_offset=20, l4_offset=60, payload_offset=68, ip_len=40 + 20, protocol=17,
        sport=5353, dport=53, **V6,
    )  # fmt: skip


@pytest.mark.parametrize("linktype", [linktypes.RAW, linktypes.RAW_OPENBSD, linktypes.RAW_LEGACY, linktypes.IPV4])
def test_raw_ipv4(linktype):
    assert decode_one(linktype, IP(**V4) / SYN) == tcp_ok(0, 20, 40, 40)


@pytest.mark.parametrize("linktype", [linktypes.RAW, linktypes.IPV6])
def test_raw_ipv6(linktype):
    frame = IPv6(**V6) / TCP(sport=1, dport=2, flags="A")
    assert decode_one(linktype, frame) == expect(
        Status.OK, ip_version=6, l3_offset=0, l4_offset=40, payload_offset=60, ip_len=60, protocol=6,
        sport=1, dport=2, tcp_flags=0x10, **V6,
    )  # fmt: skip


def test_ipv4_linktype_carrying_ipv6_is_malformed():
    assert decode_one(linktypes.IPV4, IPv6(**V6) / UDP()) == expect(Status.MALFORMED)
    assert decode_one(linktypes.IPV6, IP(**V4) / UDP()) == expect(Status.MALFORMED)


@pytest.mark.parametrize("linktype", [linktypes.NULL, linktypes.LOOP])
@pytest.mark.parametrize("order", ["<", ">"])
def test_null_and_loop_families_in_both_byte_orders(linktype, order):
    v4 = struct.pack(order + "I", 2) + bytes(IP(**V4) / SYN)
    assert decode_one(linktype, v4) == tcp_ok(4, 24, 44, 40)
    for family in (10, 24, 28, 30):
        v6 = struct.pack(order + "I", family) + bytes(IPv6(**V6) / UDP(sport=7, dport=9))
        assert decode_one(linktype, v6) == expect(
            Status.OK, ip_version=6, l3_offset=4, l4_offset=44, payload_offset=52, ip_len=48, protocol=17,
            sport=7, dport=9, **V6,
        )  # fmt: skip
    not_ip = struct.pack(order + "I", 7) + bytes(IP(**V4) / SYN)  # AF_ISO
    assert decode_one(linktype, not_ip) == expect(Status.NOT_IP)


def test_unknown_linktype():
    assert decode_one(147, IP(**V4) / SYN) == expect(Status.UNKNOWN_LINKTYPE)  # reserved for private use


@pytest.mark.parametrize("frame", [Ether(**MAC) / ARP(), Ether(type=0x88CC, **MAC) / Raw(b"\0" * 30)], ids=["arp", "lldp"])
def test_non_ip_ethertypes(frame):
    assert decode_one(linktypes.ETHERNET, frame) == expect(Status.NOT_IP)


def test_vlan_tagged_arp_is_not_ip():
    assert decode_one(linktypes.ETHERNET, Ether(**MAC) / Dot1Q(vlan=3) / ARP()) == expect(Status.NOT_IP)


def test_pppoe_session():
    v4 = Ether(**MAC) / PPPoE(sessionid=1) / PPP(proto=0x0021) / IP(**V4) / SYN
    assert decode_one(linktypes.ETHERNET, v4) == tcp_ok(22, 42, 62, 40)
    v6 = Ether(**MAC) / PPPoE(sessionid=1) / PPP(proto=0x0057) / IPv6(**V6) / UDP(sport=3, dport=4)
    assert decode_one(linktypes.ETHERNET, v6) == expect(
        Status.OK, ip_version=6, l3_offset=22, l4_offset=62, payload_offset=70, ip_len=48, protocol=17,
        sport=3, dport=4, **V6,
    )  # fmt: skip
    lcp = Ether(**MAC) / PPPoE(sessionid=1) / PPP(proto=0xC021) / Raw(b"\x01\x01\x00\x04")
    assert decode_one(linktypes.ETHERNET, lcp) == expect(Status.NOT_IP)


def test_mpls_label_stack():
    labels = struct.pack(">II", (100 << 12) | 64, (200 << 12) | 0x100 | 64)  # second label: bottom of stack
    frame = bytes(Ether(type=0x8847, **MAC)) + labels + bytes(IP(**V4) / SYN)
    assert decode_one(linktypes.ETHERNET, frame) == tcp_ok(22, 42, 62, 40)
    pseudowire = bytes(Ether(type=0x8847, **MAC)) + labels[4:] + b"\0" * 4 + bytes(Ether(**MAC) / IP(**V4) / SYN)
    assert decode_one(linktypes.ETHERNET, pseudowire) == expect(Status.NOT_IP)


# --- IPv4 -----------------------------------------------------------------------------------------


def test_ipv4_options_are_skipped_by_ihl():
    frame = Ether(**MAC) / IP(options=[IPOption_RR(routers=["10.9.9.9"])], **V4) / UDP(sport=68, dport=67) / Raw(b"d" * 10)
    assert decode_one(linktypes.ETHERNET, frame) == expect(
        Status.OK, ip_version=4, l3_offset=14, l4_offset=14 + 28, payload_offset=14 + 36, ip_len=28 + 8 + 10,
        protocol=17, sport=68, dport=67, fragment_id=1, **V4,
    )  # fmt: skip


def test_ipv4_fragments_first_keeps_ports_later_do_not():
    packet = IP(id=999, **V4) / UDP(sport=4000, dport=53) / Raw(b"z" * 100)
    first, middle, last = fragment(packet, fragsize=48)
    batch = FrameBatch.from_frames([(0, linktypes.RAW, bytes(f)) for f in (first, middle, last)])
    rows = decoded(batch)
    assert rows[0] == expect(
        Status.OK, ip_version=4, l3_offset=0, l4_offset=20, payload_offset=28, ip_len=68, protocol=17,
        sport=4000, dport=53, fragment=True, fragment_id=999, **V4,
    )  # fmt: skip
    for row, ip_len in zip(rows[1:], (68, 20 + 108 - 96)):
        assert row == expect(
            Status.FRAGMENT, ip_version=4, l3_offset=0, ip_len=ip_len, protocol=17, fragment=True, fragment_id=999, **V4
        )


def test_ipv4_later_fragment_of_icmp_is_other_l4():
    later = IP(id=5, frag=10, proto=1, **V4) / Raw(b"\0" * 16)
    assert decode_one(linktypes.RAW, later) == expect(
        Status.OTHER_L4, ip_version=4, l3_offset=0, ip_len=36, protocol=1, fragment=True, fragment_id=5, **V4
    )


def test_icmp_is_other_l4():
    frame = Ether(**MAC) / IP(id=3, **V4) / ICMP() / Raw(b"ping")
    assert decode_one(linktypes.ETHERNET, frame) == expect(
        Status.OTHER_L4, ip_version=4, l3_offset=14, ip_len=32, protocol=1, fragment_id=3, **V4
    )


def test_ihl_below_five_is_malformed():
    raw = bytearray(bytes(IP(**V4) / SYN))
    raw[0] = 0x44
    assert decode_one(linktypes.RAW, raw) == expect(Status.MALFORMED)


@pytest.mark.parametrize("version", [0, 5, 7, 15])
def test_version_other_than_4_or_6_is_malformed(version):
    raw = bytearray(bytes(IP(**V4) / SYN))
    raw[0] = (version << 4) | 5
    assert decode_one(linktypes.RAW, raw) == expect(Status.MALFORMED)
    assert decode_one(linktypes.ETHERNET, bytes(Ether(type=0x0800, **MAC)) + raw) == expect(Status.MALFORMED)


def test_ethertype_ipv4_with_ipv6_header_is_malformed():
    frame = bytes(Ether(type=0x0800, **MAC)) + bytes(IPv6(**V6) / UDP())
    assert decode_one(linktypes.ETHERNET, frame) == expect(Status.MALFORMED)


def test_ip_len_falls_back_to_wire_length_when_total_length_is_zero_or_impossible():
    packet = bytearray(bytes(IP(**V4) / SYN / Raw(b"p" * 100)))
    for stated in (0, 12, 5000):  # segmentation offload, shorter than the header, longer than the wire
        packet[2:4] = stated.to_bytes(2, "big")
        frame = bytes(Ether(type=0x0800, **MAC)) + bytes(packet[:54])  # snaplen 68 of a 154-byte frame
        assert decode_one(linktypes.ETHERNET, frame, wirelen=154) == tcp_ok(14, 34, 54, 140)
    packet[2:4] = (140).to_bytes(2, "big")  # stated and possible: Ethernet padding does not count
    frame = bytes(Ether(type=0x0800, **MAC)) + bytes(packet) + b"\0" * 6
    assert decode_one(linktypes.ETHERNET, frame) == tcp_ok(14, 34, 54, 140)


# --- IPv6 -----------------------------------------------------------------------------------------


def generic_extension(next_header: int, length_units: int) -> bytes:
    """An extension header of (length_units + 1) * 8 bytes, for kinds scapy has no layer for."""
    return bytes([next_header, length_units]) + b"\x01" * (6 + 8 * length_units)


def v6_udp(l3: int, l4: int, protocol_bytes: int, **kw) -> dict:
    fields = dict(ip_version=6, l3_offset=l3, l4_offset=l4, payload_offset=l4 + 8, ip_len=protocol_bytes,
                  protocol=17, sport=1000, dport=2000, **V6)  # fmt: skip
    return expect(Status.OK, **{**fields, **kw})


UDP_1000 = UDP(sport=1000, dport=2000)


@pytest.mark.parametrize(
    "extensions, length",
    [
        ([IPv6ExtHdrHopByHop()], 8),
        ([IPv6ExtHdrRouting()], 8),
        ([IPv6ExtHdrDestOpt(options=[])], 8),
        ([IPv6ExtHdrHopByHop(), IPv6ExtHdrRouting(), IPv6ExtHdrDestOpt()], 24),
        ([AH(nh=17, payloadlen=4, spi=1, seq=1, icv=b"\0" * 12)], 24),  # scapy leaves nh, length unset
    ],
    ids=["hop-by-hop", "routing", "destination", "chain", "ah"],
)
def test_ipv6_extension_headers_are_walked(extensions, length):
    packet = IPv6(**V6)
    for ext in extensions:
        packet = packet / ext
    frame = bytes(Ether(**MAC) / packet / UDP_1000)
    assert decode_one(linktypes.ETHERNET, frame) == v6_udp(14, 14 + 40 + length, 40 + length + 8)


@pytest.mark.parametrize("kind, units", [(135, 0), (139, 1), (140, 2)], ids=["mobility", "hip", "shim6"])
def test_ipv6_generic_extension_kinds(kind, units):
    frame = bytes(IPv6(nh=kind, plen=(units + 1) * 8 + 8, **V6)) + generic_extension(17, units) + bytes(UDP_1000)
    length = (units + 1) * 8
    assert decode_one(linktypes.RAW, frame) == v6_udp(0, 40 + length, 40 + length + 8)


def test_ipv6_mobility_header_from_scapy_is_other_l4_when_it_ends_the_chain():
    frame = IPv6(**V6) / MIP6MH_BRR()
    assert decode_one(linktypes.RAW, frame) == expect(
        Status.OTHER_L4, ip_version=6, l3_offset=0, ip_len=48, protocol=59, **V6
    )


def test_ipv6_fragments():
    packet = IPv6(**V6) / IPv6ExtHdrFragment(id=0xABCDEF01) / UDP_1000 / Raw(b"f" * 200)
    fragments = fragment6(packet, 120)
    batch = FrameBatch.from_frames([(0, linktypes.RAW, bytes(f)) for f in fragments])
    first, *later = decoded(batch)
    assert first == v6_udp(0, 48, len(fragments[0]), fragment=True, fragment_id=0xABCDEF01)
    assert later and all(
        row == expect(Status.FRAGMENT, ip_version=6, l3_offset=0, ip_len=len(f), protocol=17, fragment=True,
                      fragment_id=0xABCDEF01, **V6)  # fmt: skip
        for row, f in zip(later, fragments[1:])
    )


def test_ipv6_atomic_fragment_is_not_a_fragment():
    frame = IPv6(**V6) / IPv6ExtHdrFragment(id=7, offset=0, m=0) / UDP_1000
    assert decode_one(linktypes.RAW, frame) == v6_udp(0, 48, 56, fragment_id=7)


def test_ipv6_fragment_after_hop_by_hop_then_destination_options():
    frame = IPv6(**V6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrFragment(id=3, m=1) / IPv6ExtHdrDestOpt() / UDP_1000
    assert decode_one(linktypes.RAW, frame) == v6_udp(0, 64, 72, fragment=True, fragment_id=3)


@pytest.mark.parametrize("next_header", [50, 59, 58], ids=["esp", "no-next-header", "icmpv6"])
def test_ipv6_other_upper_layers(next_header):
    frame = bytes(IPv6(nh=next_header, plen=16, **V6)) + b"\0" * 16
    assert decode_one(linktypes.RAW, frame) == expect(
        Status.OTHER_L4, ip_version=6, l3_offset=0, ip_len=56, protocol=next_header, **V6
    )


def test_icmpv6_after_destination_options():
    frame = IPv6(**V6) / IPv6ExtHdrDestOpt() / ICMPv6EchoRequest()
    assert decode_one(linktypes.RAW, frame) == expect(
        Status.OTHER_L4, ip_version=6, l3_offset=0, ip_len=56, protocol=58, **V6
    )


def test_ipv6_payload_length_zero_falls_back_to_wire_length():
    frame = bytes(IPv6(plen=0, **V6) / UDP_1000 / Raw(b"j" * 20))
    assert decode_one(linktypes.RAW, frame) == v6_udp(0, 40, 68)


def test_ipv6_extension_chain_longer_than_the_walk_bound_is_malformed():
    chain = b"".join(generic_extension(60, 0) for _ in range(12)) + generic_extension(17, 0)
    frame = bytes(IPv6(nh=60, plen=len(chain) + 8, **V6)) + chain + bytes(UDP_1000)
    assert decode_one(linktypes.RAW, frame) == expect(Status.MALFORMED)


# --- TCP / UDP ------------------------------------------------------------------------------------


def test_tcp_data_offset_below_five_is_malformed():
    raw = bytearray(bytes(IP(**V4) / SYN))
    raw[20 + 12] = 4 << 4
    assert decode_one(linktypes.RAW, raw) == expect(
        Status.MALFORMED, ip_version=4, l3_offset=0, ip_len=40, protocol=6, fragment_id=1, **V4
    )


def test_tcp_header_longer_than_the_ip_packet_is_malformed():
    raw = bytearray(bytes(IP(**V4) / SYN)) + b"\0" * 40  # trailing bytes past total length 40
    raw[20 + 12] = 15 << 4
    assert decode_one(linktypes.RAW, raw) == expect(
        Status.MALFORMED, ip_version=4, l3_offset=0, ip_len=40, protocol=6, fragment_id=1, **V4
    )


def test_tcp_options_cut_by_the_snaplen_still_give_the_payload_offset():
    frame = bytes(Ether(**MAC) / IP(**V4) / TCP(sport=1234, dport=443, flags="S", options=TCP_OPTIONS) / Raw(b"p" * 50))
    decoded_row = decode_one(linktypes.ETHERNET, frame[:60], wirelen=len(frame))
    assert decoded_row == tcp_ok(14, 34, 74, 110)
    assert decoded_row["payload_offset"] > 60


def test_udp():
    frame = Ether(**MAC) / IP(id=77, **V4) / UDP(sport=53, dport=33333) / Raw(b"answer")
    assert decode_one(linktypes.ETHERNET, frame) == expect(
        Status.OK, ip_version=4, l3_offset=14, l4_offset=34, payload_offset=42, ip_len=34, protocol=17,
        sport=53, dport=33333, fragment_id=77, **V4,
    )  # fmt: skip


# --- truncation -----------------------------------------------------------------------------------

ETHER_TCP = bytes(Ether(**MAC) / IP(options=[IPOption_RR(routers=["10.9.9.9"])], **V4) / TCP(sport=1, dport=2, flags="S"))
ETHER_UDP = bytes(Ether(**MAC) / IP(**V4) / UDP(sport=1, dport=2))
V6_EXT = bytes(Ether(**MAC) / IPv6(**V6) / IPv6ExtHdrHopByHop() / UDP_1000)
V4_FIELDS = dict(ip_version=4, l3_offset=14, fragment_id=1, **V4)


@pytest.mark.parametrize(
    "frame, caplen, fields",
    [
        (ETHER_TCP, 0, {}),
        (ETHER_TCP, 13, {}),  # inside the Ethernet header
        (ETHER_TCP, 14, {}),  # no IP byte at all
        (ETHER_TCP, 14 + 19, {}),  # inside the fixed IPv4 header
        (ETHER_TCP, 14 + 27, {}),  # inside the IPv4 options
        (ETHER_TCP, 14 + 28 + 19, dict(ip_len=48, protocol=6, **V4_FIELDS)),  # inside the fixed TCP header
        (ETHER_UDP, 14 + 20 + 7, dict(ip_len=28, protocol=17, **V4_FIELDS)),  # inside the UDP header
        (V6_EXT, 14 + 39, {}),  # inside the fixed IPv6 header
        (V6_EXT, 14 + 40 + 7, {}),  # inside the hop-by-hop header
        (bytes(Ether(**MAC) / Dot1Q() / Dot1Q() / IP(**V4)), 14 + 4 + 3, {}),  # inside the second VLAN tag
    ],
)
def test_truncated_at_each_layer(frame, caplen, fields):
    assert decode_one(linktypes.ETHERNET, frame[:caplen], wirelen=len(frame)) == expect(Status.TRUNCATED, **fields)


@pytest.mark.parametrize("linktype", sorted(linktypes.SUPPORTED))
def test_zero_length_frame_is_truncated_under_every_known_linktype(linktype):
    assert decode_one(linktype, b"", wirelen=60) == expect(Status.TRUNCATED)


def test_empty_batch_and_batch_of_empty_frames():
    assert len(decode(FrameBatch.from_frames([]))) == 0
    packets = decode(FrameBatch.from_frames([(0, linktypes.ETHERNET, b""), (0, 999, b"")]))
    assert packets.status.tolist() == [Status.TRUNCATED, Status.UNKNOWN_LINKTYPE]


# --- batches, helpers -----------------------------------------------------------------------------


def test_mixed_linktypes_keep_frame_order_and_types():
    frames = [
        (1, linktypes.ETHERNET, bytes(Ether(**MAC) / IP(**V4) / SYN)),
        (2, linktypes.RAW, bytes(IPv6(**V6) / UDP_1000)),
        (3, linktypes.LINUX_SLL, bytes(CookedLinux() / IP(**V4) / SYN)),
        (4, 147, b"\x00" * 40),
        (5, linktypes.NULL, struct.pack("<I", 2) + bytes(IP(**V4) / ICMP())),
        (6, linktypes.ETHERNET, bytes(Ether(**MAC) / ARP())),
    ]
    packets = decode(FrameBatch.from_frames(frames))
    assert packets.status.tolist() == [Status.OK, Status.OK, Status.OK, Status.UNKNOWN_LINKTYPE, Status.OTHER_L4, Status.NOT_IP]
    assert packets.l3_offset.tolist() == [14, 0, 16, -1, 4, -1]
    assert packets.ip_version.tolist() == [4, 6, 4, 0, 4, 0]
    assert packets.sport.tolist() == [1234, 1000, 1234, 0, 0, 0]
    assert status_counts(packets) == {
        "ok": 3, "fragment": 0, "other_l4": 1, "not_ip": 1, "unknown_linktype": 1, "truncated": 0, "malformed": 0
    }  # fmt: skip
    for name in FIELDS:
        assert len(getattr(packets, name)) == len(frames)
    assert packets.src.shape == (6, 16) and packets.src.dtype == np.uint8
    assert (packets.l3_offset.dtype, packets.sport.dtype, packets.fragment_id.dtype) == (np.int32, np.uint16, np.uint32)


def test_ipv4_addresses_are_stored_ipv4_mapped():
    packets = decode(FrameBatch.from_frames([(0, linktypes.RAW, bytes(IP(src="10.0.0.1", dst="10.0.0.2") / SYN))]))
    assert packets.src[0].tobytes() == b"\0" * 10 + b"\xff\xff" + bytes([10, 0, 0, 1])
    assert is_ipv4_mapped(packets.src).tolist() == [True]


def test_format_addresses():
    addresses = np.zeros((4, 16), dtype=np.uint8)
    addresses[0, 10:] = [0xFF, 0xFF, 10, 0, 0, 1]
    addresses[1] = np.frombuffer(bytes.fromhex("20010db8000000000000000000000001"), dtype=np.uint8)
    addresses[3] = addresses[0]
    assert format_addresses(addresses).to_pylist() == ["10.0.0.1", "2001:db8::1", "::", "10.0.0.1"]
    assert format_addresses(addresses[[0, 3]]).to_pylist() == ["10.0.0.1", "10.0.0.1"]
    assert format_addresses(addresses[[1, 2, 1]]).to_pylist() == ["2001:db8::1", "::", "2001:db8::1"]
    assert format_addresses(np.zeros((0, 16), dtype=np.uint8)).to_pylist() == []
    assert is_ipv4_mapped(addresses).tolist() == [True, False, False, True]


@settings(deadline=None)  # the first example compiles the formatting loop
@given(st.lists(st.one_of(st.binary(min_size=4, max_size=4).map(lambda v4: bytes(10) + b"\xff\xff" + v4),
                          st.binary(min_size=16, max_size=16)), max_size=30))
def test_format_addresses_equals_the_standard_library_row_by_row(addresses):
    rows = np.frombuffer(b"".join(addresses), dtype=np.uint8).reshape(-1, 16)
    expected = [str(ipaddress.IPv4Address(raw[12:]) if raw[:12] == bytes(10) + b"\xff\xff" else
                    ipaddress.IPv6Address(raw)) for raw in addresses]
    assert format_addresses(rows).to_pylist() == expected

