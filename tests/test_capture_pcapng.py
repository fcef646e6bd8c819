"""pcapng files written by scapy and dpkt, and hand-built ones for sections, interfaces and block kinds."""

from __future__ import annotations

import struct
from decimal import Decimal

import dpkt
import numpy as np
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgWriter
from test_capture_pcap import read_all

from etbert.capture.frames import CaptureReport
from etbert.capture.pcapng import ticks_to_ns
from etbert.capture.reader import read_frames
from etbert.protocols import linktypes

SHB, IDB, OPB, SPB, NRB, ISB, EPB = 0x0A0D0D0A, 1, 2, 3, 4, 5, 6


def pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def block(order: str, block_type: int, body: bytes) -> bytes:
    body = pad4(body)
    length = 12 + len(body)
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def section(order: str = "<") -> bytes:
    return block(order, SHB, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + pad4(value)


def interface(order: str, linktype: int, snaplen: int = 0, tsresol: int | None = None,
              tsoffset: int | None = None) -> bytes:
    options = option(order, 2, b"eth-test")  # if_name, ignored
    if tsresol is not None:
        options += option(order, 9, bytes([tsresol]))
    if tsoffset is not None:
        options += option(order, 14, struct.pack(order + "q", tsoffset))
    return block(order, IDB, struct.pack(order + "HHI", linktype, 0, snaplen) + options + option(order, 0, b""))


def enhanced(order: str, interface_id: int, ticks: int, data: bytes, wirelen: int | None = None) -> bytes:
    header = struct.pack(order + "IIIII", interface_id, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                         len(data) if wirelen is None else wirelen)
    return block(order, EPB, header + pad4(data) + option(order, 1, b"a comment") + option(order, 0, b""))


def obsolete(order: str, interface_id: int, ticks: int, data: bytes) -> bytes:
    header = struct.pack(order + "HHIIII", interface_id, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data))
    return block(order, OPB, header + data)


def simple(order: str, data: bytes, wirelen: int | None = None) -> bytes:
    return block(order, SPB, struct.pack(order + "I", len(data) if wirelen is None else wirelen) + data)


def unknown(order: str, block_type: int = 0x40000BAD, size: int = 9) -> bytes:
    return block(order, block_type, bytes(range(size)))


def test_scapy_pcapng_with_two_interfaces_of_different_link_types(tmp_path):
    ethernet = [Ether() / IP(dst="10.0.0.9") / UDP(sport=1, dport=2) / (b"e" * i) for i in range(3)]
    raw = [IP(dst="10.0.0.8") / UDP(sport=3, dport=4) / (b"r" * i) for i in range(3)]
    for i in range(3):
        ethernet[i].time, ethernet[i].sniffed_on = Decimal("1700000000.000001") + i, "eth0"
        ethernet[i].comments = [b"a comment"]
        raw[i].time, raw[i].sniffed_on = Decimal("1700000000.5") + i, "tun0"
    path = tmp_path / "two.pcapng"
    with PcapNgWriter(str(path)) as writer:
        writer.write([packet for pair in zip(ethernet, raw) for packet in pair])

    report, frames = read_all(path)

    assert report.format == "pcapng" and report.ok
    # scapy writes bare IP as LINKTYPE_IPV4
    assert [frame[1] for frame in frames] == [linktypes.ETHERNET, linktypes.IPV4] * 3
    assert [frame[2] for frame in frames] == [bytes(p) for pair in zip(ethernet, raw) for p in pair]
    assert [frame[0] for frame in frames] == [
        ts for i in range(3) for ts in ((1_700_000_000 + i) * 10**9 + 1000, (1_700_000_000 + i) * 10**9 + 500_000_000)]


def test_dpkt_written_pcapng(tmp_path):
    path = tmp_path / "dpkt.pcapng"
    datas = [b"\x02" * 14 + bytes(range(i)) for i in range(10)]
    with open(path, "wb") as handle:
        writer = dpkt.pcapng.Writer(handle, linktype=1)
        for i, data in enumerate(datas):
            writer.writepkt(data, ts=1_650_000_000 + i / 4)
    report, frames = read_all(path)
    assert report.ok
    assert [frame[2] for frame in frames] == datas
    assert [frame[0] for frame in frames] == [1_650_000_000 * 10**9 + i * 250_000_000 for i in range(10)]


def test_sections_reset_interfaces_and_may_change_byte_order(tmp_path):
    """Section 1 (little endian): ethernet at microseconds, raw IP at nanoseconds. Section 2 (big
    endian): one Linux SLL interface at 2^-20 s with a 100 s offset, so its id 0 is a new interface."""
    two_pow = (7 << 20) | (1 << 19)  # 7.5 s in units of 2^-20 s
    data = b"".join([
        section("<"),
        interface("<", linktypes.ETHERNET),
        unknown("<"),
        interface("<", linktypes.RAW, tsresol=9),
        enhanced("<", 1, 1_700_000_000_123_456_789, b"raw-ip", wirelen=1400),
        enhanced("<", 0, 1_700_000_000_000_002, b"ether"),
        block("<", NRB, b"\0" * 8),
        section(">"),
        unknown(">", ISB, 20),
        interface(">", linktypes.LINUX_SLL, tsresol=0x80 | 20, tsoffset=100),
        enhanced(">", 0, two_pow, b"sll!"),
        obsolete(">", 0, two_pow + (1 << 18), b"old-pkt"),
    ])
    path = tmp_path / "sections.pcapng"
    path.write_bytes(data)

    report, frames = read_all(path)

    assert report.ok, report.problems
    assert frames == [
        (1_700_000_000_123_456_789, 101, b"raw-ip", 1400),
        (1_700_000_000_000_002_000, 1, b"ether", 5),
        (107_500_000_000, 113, b"sll!", 4),
        (107_750_000_000, 113, b"old-pkt", 7),
    ]


def test_simple_packets_take_the_previous_timestamp_and_the_smallest_length(tmp_path):
    path = tmp_path / "simple.pcapng"
    path.write_bytes(b"".join([
        section(),
        interface("<", linktypes.RAW, snaplen=6),
        simple("<", b"first"),  # no frame before it: timestamp 0
        enhanced("<", 0, 42, b"timed"),
        simple("<", b"abc"),  # padded to 4 bytes; caplen stays 3
        simple("<", b"abcdefgh", wirelen=100),  # the snaplen (6) cuts it
        simple("<", b"ab", wirelen=100),  # block space (4 with padding) cuts it below the original 100
    ]))
    report, frames = read_all(path)
    assert report.ok
    assert frames == [
        (0, 101, b"first", 5),
        (42_000, 101, b"timed", 5),
        (42_000, 101, b"abc", 3),
        (42_000, 101, b"abcdef", 100),
        (42_000, 101, b"ab\0\0", 100),
    ]


def test_simple_packet_timestamps_carry_across_chunks(tmp_path):
    path = tmp_path / "simple-chunks.pcapng"
    path.write_bytes(section() + interface("<", 1) + enhanced("<", 0, 7, b"x" * 40) + simple("<", b"y" * 40) * 5)
    _, frames = read_all(path, chunk_bytes=64)
    assert [frame[0] for frame in frames] == [7000] * 6
    assert read_all(path, chunk_bytes=64) == read_all(path)


def test_frames_on_undeclared_interfaces_are_counted_and_skipped(tmp_path):
    path = tmp_path / "undeclared.pcapng"
    path.write_bytes(b"".join([
        section(),
        simple("<", b"before-any-interface"),
        interface("<", 1),
        interface("<", 101),
        enhanced("<", 1, 1, b"kept-1"),
        section(),
        interface("<", 113),
        enhanced("<", 1, 2, b"gone"),  # section 2 has a single interface
        enhanced("<", 1, 3, b"gone too"),
        enhanced("<", 0, 4, b"kept-2"),
    ]))
    report, frames = read_all(path)
    assert [(frame[1], frame[2]) for frame in frames] == [(101, b"kept-1"), (113, b"kept-2")]
    assert report.skipped_frames == 3
    assert len(report.problems) == 2
    assert report.problems[0].startswith("block 2 at byte offset 28: frame on undeclared interface 0 of section 1")
    assert "undeclared interface 1 of section 2" in report.problems[1]


def test_malformed_interface_options_are_reported_but_the_frames_kept(tmp_path):
    bad_options = struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 200)  # option longer than the block
    path = tmp_path / "options.pcapng"
    path.write_bytes(section() + block("<", IDB, bad_options) + enhanced("<", 0, 5, b"data"))
    report, frames = read_all(path)
    assert frames == [(5000, 1, b"data", 4)]
    assert len(report.problems) == 1 and "interface options run past the end" in report.problems[0]


def test_tiny_chunks_give_the_same_frames(tmp_path):
    blocks = [section(), interface("<", 1), interface("<", 101, tsresol=3)]
    blocks += [enhanced("<", i % 2, i * 1000, bytes([i]) * (i * 13 % 200)) for i in range(200)]
    path = tmp_path / "chunks.pcapng"
    path.write_bytes(b"".join(blocks))
    report = CaptureReport(str(path))
    batches = list(read_frames(path, report, batch_frames=5, chunk_bytes=50))
    assert max(len(batch) for batch in batches) <= 5 and report.ok and report.frames == 200
    assert read_all(path, chunk_bytes=50) == read_all(path)
    _, frames = read_all(path)
    assert [frame[0] for frame in frames] == [i * 1000 * (1000 if i % 2 == 0 else 10**6) for i in range(200)]


def test_timestamp_resolutions():
    ticks = np.array([0, 1, 1_500_000, 2**40 + 3], dtype=np.uint64)
    assert ticks_to_ns(ticks, 6).tolist() == [0, 1000, 1_500_000_000, (2**40 + 3) * 1000]
    assert ticks_to_ns(ticks, 9).tolist() == ticks.astype(np.int64).tolist()
    assert ticks_to_ns(ticks, 12).tolist() == [0, 0, 1500, (2**40 + 3) // 1000]
    assert ticks_to_ns(ticks, 0x80 | 10).tolist() == [t * 10**9 // 1024 for t in [0, 1, 1_500_000, 2**40 + 3]]
    assert ticks_to_ns(ticks[:3], 0x80 | 0).tolist() == [0, 10**9, 1_500_000 * 10**9]
    # 2^-40 s: the fraction is rounded down to a nanosecond after dropping its lowest bits.
    assert ticks_to_ns(np.array([3 << 40 | 1 << 39], dtype=np.uint64), 0x80 | 40).tolist() == [3_500_000_000]
    # Absurd resolutions from damaged files still convert without raising.
    assert ticks_to_ns(ticks, 0x80 | 127).tolist() == [0, 0, 0, 0]
    assert ticks_to_ns(ticks, 127).tolist() == [0, 0, 0, 0]
