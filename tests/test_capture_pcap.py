"""Classic pcap files written by scapy and dpkt, and hand-built ones for the variants they do not write."""

from __future__ import annotations

import struct
from decimal import Decimal
from pathlib import Path

import dpkt
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapWriter, wrpcap

from etbert.capture.frames import CaptureReport
from etbert.capture.reader import read_frames


def read_all(path: Path, **options) -> tuple[CaptureReport, list[tuple[int, int, bytes, int]]]:
    """Every frame of a capture as (ts_ns, linktype, bytes, wirelen), and the report."""
    report = CaptureReport(str(path))
    frames = []
    for batch in read_frames(path, report, **options):
        assert batch.buffer.dtype.name == "uint8"
        assert ((batch.offset >= 0) & (batch.offset + batch.caplen <= len(batch.buffer))).all()
        for i in range(len(batch)):
            frames.append((int(batch.ts_ns[i]), int(batch.linktype[i]), batch.frame(i), int(batch.wirelen[i])))
    assert report.frames == len(frames)
    assert report.bytes == sum(len(frame[2]) for frame in frames)
    return report, frames


def pcap_bytes(records, order="<", magic=0xA1B2C3D4, linktype=1, snaplen=65535, extra_header=b"") -> bytes:
    """A pcap file of ``(sec, frac, data, wirelen)`` records; ``extra_header`` follows each record header."""
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for sec, frac, data, wirelen in records:
        out.append(struct.pack(order + "IIII", sec, frac, len(data), wirelen) + extra_header + data)
    return b"".join(out)


def sample_packets(count: int = 5):
    packets = []
    for i in range(count):
        payload = bytes(range(i * 7 % 256)) * (i + 1)
        layer4 = TCP(sport=40000 + i, dport=443, flags="PA") if i % 2 else UDP(sport=5353, dport=53)
        packets.append(Ether(dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2") / layer4 / payload)
    return packets


def test_scapy_microsecond_pcap_round_trips(tmp_path):
    packets = sample_packets()
    for i, packet in enumerate(packets):
        packet.time = Decimal(1_700_000_000 + i) + Decimal("0.123456")
    wrpcap(str(tmp_path / "us.pcap"), packets)

    report, frames = read_all(tmp_path / "us.pcap")

    assert report.format == "pcap" and report.ok
    assert [frame[2] for frame in frames] == [bytes(packet) for packet in packets]
    assert [frame[0] for frame in frames] == [(1_700_000_000 + i) * 10**9 + 123_456_000 for i in range(len(packets))]
    assert {frame[1] for frame in frames} == {1}
    assert [frame[3] for frame in frames] == [len(packet) for packet in packets]


@pytest.mark.parametrize("endianness", ["<", ">"])
def test_scapy_nanosecond_pcap_in_both_byte_orders(tmp_path, endianness):
    packets = [IP(src="192.0.2.1", dst="198.51.100.7") / UDP(sport=1000 + i, dport=53) / (b"q" * i) for i in range(4)]
    for i, packet in enumerate(packets):
        packet.time = Decimal("1700000000.123456789") + i
    path = tmp_path / "ns.pcap"
    with PcapWriter(str(path), linktype=101, nano=True, endianness=endianness) as writer:
        writer.write(packets)
    magic = path.read_bytes()[:4]
    assert magic == (b"\x4d\x3c\xb2\xa1" if endianness == "<" else b"\xa1\xb2\x3c\x4d")

    report, frames = read_all(path)

    assert report.ok
    assert [frame[0] for frame in frames] == [1_700_000_000_123_456_789 + i * 10**9 for i in range(4)]
    assert [frame[1] for frame in frames] == [101] * 4
    assert [frame[2] for frame in frames] == [bytes(packet) for packet in packets]


def test_dpkt_written_pcap_round_trips(tmp_path):
    path = tmp_path / "dpkt.pcap"
    datas = [bytes(packet) for packet in sample_packets(6)]
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=1, nano=True)
        for i, data in enumerate(datas):
            writer.writepkt(data, ts=1_600_000_000 + i)
    _, frames = read_all(path)
    assert [frame[2] for frame in frames] == datas
    assert [frame[0] for frame in frames] == [(1_600_000_000 + i) * 10**9 for i in range(6)]


def test_gzip_compressed_pcap_reads_like_the_plain_one(tmp_path):
    packets = sample_packets(8)
    wrpcap(str(tmp_path / "plain.pcap"), packets)
    wrpcap(str(tmp_path / "packed.pcap.gz"), packets, gz=True)
    assert (tmp_path / "packed.pcap.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert read_all(tmp_path / "packed.pcap.gz") == (
        CaptureReport(str(tmp_path / "packed.pcap.gz"), "pcap", 8, sum(len(p) for p in packets)),
        read_all(tmp_path / "plain.pcap")[1],
    )


def test_big_endian_microsecond_pcap_and_fcs_bits_in_the_link_type(tmp_path):
    path = tmp_path / "be.pcap"
    linktype_with_fcs_bits = (4 << 28) | (1 << 26) | 113
    path.write_bytes(pcap_bytes([(5, 999_999, b"abcdef", 6), (6, 1, b"xy", 60)], ">", linktype=linktype_with_fcs_bits))
    report, frames = read_all(path)
    assert report.ok
    assert frames == [(5_999_999_000, 113, b"abcdef", 6), (6_000_001_000, 113, b"xy", 60)]


def test_kuznetzov_modified_pcap_skips_the_extra_record_header_bytes(tmp_path):
    path = tmp_path / "kuznetzov.pcap"
    extra = struct.pack("<IHBx", 2, 0x0800, 4)  # ifindex, protocol, packet type, padding
    path.write_bytes(pcap_bytes([(1, 2, b"one", 3), (3, 4, b"second", 6)], "<", magic=0xA1B2CD34, extra_header=extra))
    report, frames = read_all(path)
    assert report.ok
    assert frames == [(1_000_002_000, 1, b"one", 3), (3_000_004_000, 1, b"second", 6)]


def test_zero_length_records_are_kept_and_short_wirelen_is_raised_to_caplen(tmp_path):
    path = tmp_path / "odd.pcap"
    path.write_bytes(pcap_bytes([(1, 0, b"", 0), (2, 0, b"12345", 0), (3, 0, b"abc", 1500)]))
    report, frames = read_all(path)
    assert report.ok
    assert frames == [(10**9, 1, b"", 0), (2 * 10**9, 1, b"12345", 5), (3 * 10**9, 1, b"abc", 1500)]


def test_tiny_chunks_and_batches_give_the_same_frames(tmp_path):
    """Records cross chunk boundaries (some records are longer than a chunk); batches stay bounded."""
    records = [(i, i, bytes([i % 256]) * (i * 37 % 300), 1000) for i in range(400)]
    path = tmp_path / "many.pcap"
    path.write_bytes(pcap_bytes(records))
    _, whole = read_all(path)
    report = CaptureReport(str(path))
    batches = list(read_frames(path, report, batch_frames=7, chunk_bytes=100))
    assert all(0 < len(batch) <= 7 for batch in batches)
    pieces = [(int(batch.ts_ns[i]), int(batch.linktype[i]), batch.frame(i), int(batch.wirelen[i]))
              for batch in batches for i in range(len(batch))]
    assert pieces == whole
    assert [frame[2] for frame in whole] == [record[2] for record in records]
    assert report.ok and report.frames == 400


def test_frames_of_one_chunk_share_its_buffer(tmp_path):
    path = tmp_path / "shared.pcap"
    path.write_bytes(pcap_bytes([(0, 0, b"a" * 10, 10)] * 20))
    batches = list(read_frames(path, CaptureReport(str(path)), batch_frames=8))
    assert [len(batch) for batch in batches] == [8, 8, 4]
    assert all(batch.buffer is batches[0].buffer for batch in batches)
    assert batches[1].offset[0] == 24 + 8 * (16 + 10) + 16
