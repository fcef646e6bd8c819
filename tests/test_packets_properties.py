"""Properties of the decoder on arbitrary bytes: it never raises, never reads outside a frame, and
every offset it reports lies where the headers it parsed say.

Inputs are random bytes and real header stacks with random bytes overwritten and random cuts, under
every link type. Each frame is also decoded alone, in a buffer that ends where the frame ends: a read
past the frame would then raise IndexError, and the result must equal the frame's row in the batch.
"""

import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from test_packets_linktypes import ENCAPSULATIONS

from etbert.capture.frames import FrameBatch
from etbert.packets.batch import PacketBatch, Status
from etbert.packets.decode import decode
from etbert.protocols import linktypes

FIELDS = ("status", "ip_version", "l3_offset", "l4_offset", "payload_offset", "ip_len", "protocol",
          "src", "dst", "sport", "dport", "tcp_flags", "fragment", "fragment_id")  # fmt: skip
TCP_OPTIONS = [("MSS", 1460), ("NOP", None), ("WScale", 7), ("Timestamp", (1, 2))]
NETWORK = [  # (ethertype, IP packet)
    (0x0800, IP(options=[IPOption_RR(routers=["1.1.1.1"])]) / TCP(options=TCP_OPTIONS) / b"data"),
    (0x0800, IP() / UDP() / b"data"),
    (0x0800, IP(flags="MF", frag=0) / UDP() / b"data"),
    (0x0800, IP(frag=3) / b"data-data"),
    (0x0800, IP() / ICMP()),
    (0x86DD, IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() / TCP() / b"data"),
    (0x86DD, IPv6() / IPv6ExtHdrFragment(m=1) / UDP() / b"data"),
    (0x86DD, IPv6() / IPv6ExtHdrFragment(offset=4) / b"data"),
]
NETWORK = [(ethertype, bytes(packet)) for ethertype, packet in NETWORK]


def link_header(linktype: int, ethertype: int, variant: int) -> bytes:
    if linktype == linktypes.ETHERNET:
        tags = [b"", bytes(Dot1Q(type=ethertype)), bytes(Dot1AD(type=0x8100) / Dot1Q(type=ethertype))][variant % 3]
        outer = ethertype if not tags else (0x8100 if variant % 3 == 1 else 0x88A8)
        return bytes(Ether(type=outer, src="02:00:00:00:00:01", dst="02:00:00:00:00:02")) + tags
    if linktype == linktypes.LINUX_SLL:
        return b"\0" * 14 + struct.pack(">H", ethertype)
    if linktype == linktypes.LINUX_SLL2:
        return struct.pack(">H", ethertype) + b"\0" * 18
    if linktype in (linktypes.NULL, linktypes.LOOP):
        return struct.pack("<I" if variant % 2 else ">I", 2 if ethertype == 0x0800 else 28)
    return b""


def link_frame(linktype: int, ethertype: int, packet: bytes, variant: int) -> bytes:
    wraps = [wrap for _, encapsulated, wrap in ENCAPSULATIONS if encapsulated == linktype]
    if wraps:  # variable link headers (PPP, 802.11, NFLOG, pflog), some with a trailer
        return wraps[variant % len(wraps)](ethertype, packet)[0]
    return link_header(linktype, ethertype, variant) + packet


LINKTYPES = sorted(linktypes.SUPPORTED) + [147]


@st.composite
def frames(draw):
    linktype = draw(st.sampled_from(LINKTYPES))
    if draw(st.booleans()):
        frame = bytearray(draw(st.binary(max_size=120)))
    else:
        ethertype, packet = draw(st.sampled_from(NETWORK))
        frame = bytearray(link_frame(linktype, ethertype, packet, draw(st.integers(0, 5))))
        for _ in range(draw(st.integers(0, 3))):
            frame[draw(st.integers(0, len(frame) - 1))] = draw(st.integers(0, 255))
        if draw(st.booleans()):
            frame = frame[: draw(st.integers(0, len(frame)))]
    return linktype, bytes(frame), len(frame) + draw(st.sampled_from([0, 0, 1, 40, 1500]))


def assert_invariants(packets: PacketBatch) -> None:
    frames = packets.frames
    caplen, wirelen = frames.caplen.astype(np.int64), frames.wirelen.astype(np.int64)
    status, version = packets.status, packets.ip_version
    l3, l4, payload = (x.astype(np.int64) for x in (packets.l3_offset, packets.l4_offset, packets.payload_offset))
    assert set(status.tolist()) <= {int(s) for s in Status}
    ok = status == Status.OK

    # IP fields: present exactly where an IP header was parsed whole.
    is_ip = version != 0
    assert set(version.tolist()) <= {0, 4, 6}
    assert ((l3 >= 0) == is_ip).all()
    ip_header = np.where(version == 4, 20, 40)
    assert (l3[is_ip] + ip_header[is_ip] <= caplen[is_ip]).all()
    assert (packets.ip_len[is_ip] >= ip_header[is_ip]).all()
    assert (l3[is_ip] + packets.ip_len[is_ip] <= wirelen[is_ip]).all()
    for name in ("ip_len", "protocol", "src", "dst", "fragment", "fragment_id"):
        assert not getattr(packets, name)[~is_ip].any(), name
    v4 = version == 4
    assert (packets.src[v4, :12] == [0] * 10 + [255, 255]).all()
    assert np.isin(status[is_ip], [Status.OK, Status.FRAGMENT, Status.OTHER_L4, Status.TRUNCATED, Status.MALFORMED]).all()

    # Transport fields: present exactly for OK frames.
    assert ((l4 >= 0) == ok).all() and ((payload >= 0) == ok).all()
    assert is_ip[ok].all()
    is_tcp, is_udp = ok & (packets.protocol == 6), ok & (packets.protocol == 17)
    assert (is_tcp | is_udp)[ok].all()
    assert (l4[ok] >= l3[ok] + ip_header[ok]).all()
    assert (l4[is_tcp] + 20 <= caplen[is_tcp]).all() and (l4[is_udp] + 8 <= caplen[is_udp]).all()
    assert ((payload - l4)[is_tcp] >= 20).all() and ((payload - l4)[is_tcp] <= 60).all()
    assert ((payload - l4)[is_udp] == 8).all()
    # The payload starts inside the IP packet, so past the captured bytes only where the snaplen cut.
    assert (payload[ok] <= l3[ok] + packets.ip_len[ok]).all()
    beyond = ok & (payload > caplen)
    assert (caplen[beyond] < wirelen[beyond]).all() and is_tcp[beyond].all()
    for name in ("sport", "dport", "tcp_flags"):
        assert not getattr(packets, name)[~ok].any(), name
    assert not packets.tcp_flags[is_udp].any()

    fragment = status == Status.FRAGMENT
    assert packets.fragment[fragment].all() and np.isin(packets.protocol[fragment], [6, 17]).all()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frames(), max_size=8))
def test_decoder_invariants_hold_on_arbitrary_frames(drawn):
    batch = FrameBatch.from_frames([(0, lt, frame) for lt, frame, _ in drawn], [w for _, _, w in drawn])
    packets = decode(batch)
    assert len(packets) == len(drawn)
    assert_invariants(packets)
    for i, (linktype, frame, wirelen) in enumerate(drawn):
        alone = decode(FrameBatch.from_frames([(0, linktype, frame)], [wirelen]))
        for name in FIELDS:
            assert np.array_equal(getattr(alone, name)[0], getattr(packets, name)[i]), name


def test_invariants_check_catches_an_offset_outside_the_frame():
    """The invariants above are not vacuous: a corrupted result fails them."""
    packets = decode(FrameBatch.from_frames([(0, linktypes.RAW, bytes(IP() / TCP()))]))
    assert_invariants(packets)
    packets.l4_offset[0] = 39
    try:
        assert_invariants(packets)
    except AssertionError:
        return
    raise AssertionError("an l4 offset 1 byte before the end of a TCP header went unnoticed")
