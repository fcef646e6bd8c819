"""Damaged and foreign files: never an exception, every frame before the damage, one line per problem."""

from __future__ import annotations

import gzip
import struct

import pytest
from test_capture_pcap import pcap_bytes, read_all
from test_capture_pcapng import EPB, IDB, block, enhanced, interface, section

from etbert.capture.frames import CaptureReport
from etbert.capture.reader import read_frames

RECORDS = [(i, 0, bytes([i]) * (20 + i), 20 + i) for i in range(1, 4)]
PCAP = pcap_bytes(RECORDS)
PCAP_RECORD_STARTS = [24, 24 + 16 + 21, 24 + 16 + 21 + 16 + 22]
PCAPNG_HEAD = section() + interface("<", 1)
PCAPNG = PCAPNG_HEAD + b"".join(enhanced("<", 0, i, data) for i, _, data, _ in RECORDS)
FIRST_TWO_FRAMES = [RECORDS[0][2], RECORDS[1][2]]


def read(tmp_path, data: bytes, name: str = "capture"):
    path = tmp_path / name
    path.write_bytes(data)
    report, frames = read_all(path)
    return report, [frame[2] for frame in frames]


def test_missing_path_and_directory_are_usage_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_frames(tmp_path / "absent.pcap", CaptureReport("absent"))
    with pytest.raises(IsADirectoryError):
        read_frames(tmp_path, CaptureReport("dir"))


def test_empty_file(tmp_path):
    report, frames = read(tmp_path, b"")
    assert (report.format, report.problems, frames) == ("", ["empty file"], [])
    assert not report.is_capture


def test_not_a_capture(tmp_path):
    report, frames = read(tmp_path, b"GIF89a, not a capture at all")
    assert report.format == "" and frames == []
    assert report.problems == ["not a pcap or pcapng file (first bytes: 47 49 46 38 39 61 2c 20)"]


@pytest.mark.parametrize("data, expected", [
    (PCAP[:10], "truncated pcap file header (10 of 24 bytes)"),
    (PCAPNG[:20], "block 1 at byte offset 0: truncated (needs 28 bytes, the file ends after 20)"),
    (PCAPNG[:8], "block 1 at byte offset 0: truncated (needs 12 bytes, the file ends after 8)"),
])
def test_truncated_file_header(tmp_path, data, expected):
    report, frames = read(tmp_path, data)
    assert report.is_capture and frames == [] and report.problems == [expected]


def test_truncated_final_pcap_record_keeps_the_earlier_frames(tmp_path):
    report, frames = read(tmp_path, PCAP[:-5])
    assert frames == FIRST_TWO_FRAMES
    assert report.problems == [
        f"record 3 at byte offset {PCAP_RECORD_STARTS[2]}: truncated (needs 39 bytes, the file ends after 34)"]


def test_truncated_record_header(tmp_path):
    report, frames = read(tmp_path, PCAP[: PCAP_RECORD_STARTS[2] + 7])
    assert frames == FIRST_TWO_FRAMES
    assert report.problems == [
        f"record 3 at byte offset {PCAP_RECORD_STARTS[2]}: truncated (needs 16 bytes, the file ends after 7)"]


def test_caplen_running_past_the_end_of_the_file(tmp_path):
    report, frames = read(tmp_path, PCAP + struct.pack("<IIII", 9, 0, 5000, 5000) + b"short")
    assert frames == [record[2] for record in RECORDS]
    assert report.problems == [
        f"record 4 at byte offset {len(PCAP)}: truncated (needs 5016 bytes, the file ends after 21)"]


def test_absurd_caplen_stops_reading_the_file(tmp_path):
    data = PCAP[: PCAP_RECORD_STARTS[2]] + struct.pack("<IIII", 9, 0, 10**7, 60) + PCAP[PCAP_RECORD_STARTS[2] :]
    report, frames = read(tmp_path, data)
    assert frames == FIRST_TWO_FRAMES
    assert report.problems == [
        f"record 3 at byte offset {PCAP_RECORD_STARTS[2]}: "
        "caplen 10000000 exceeds the 262144-byte limit; rest of file not read"]


def test_absurd_caplen_with_records_beyond_it_stops_at_the_bad_record(tmp_path):
    # The reader follows caplens before it checks them: the walk goes on from the bad record into the
    # frame bytes after it, and none of what it finds there may count.
    after = pcap_bytes([(i, 0, bytes([i % 7 + 1]) * 400, 400) for i in range(1000)])[24:]
    for caplen in (300_000, 262_145):
        data = PCAP[: PCAP_RECORD_STARTS[2]] + struct.pack("<IIII", 9, 0, caplen, 60) + after
        report, frames = read(tmp_path, data)
        assert frames == FIRST_TWO_FRAMES
        assert report.problems == [
            f"record 3 at byte offset {PCAP_RECORD_STARTS[2]}: "
            f"caplen {caplen} exceeds the 262144-byte limit; rest of file not read"]


def test_a_large_snaplen_raises_the_caplen_limit(tmp_path):
    data = pcap_bytes([(0, 0, b"j" * 300_000, 300_000)], snaplen=1 << 20)
    report, frames = read(tmp_path, data)
    assert report.ok and frames == [b"j" * 300_000]


@pytest.mark.parametrize("garbage", [b"\xff" * 5, b"\xff" * 64, b"\0\0\0\0\x13\x37" * 9])
def test_garbage_after_valid_records(tmp_path, garbage):
    for capture in (PCAP, PCAPNG):
        report, frames = read(tmp_path, capture + garbage)
        assert frames == [record[2] for record in RECORDS]
        assert len(report.problems) == 1, report.problems


@pytest.mark.parametrize("length, expected", [
    (30, "block length 30 is not a multiple of 4"),
    (8, "block length 8 is not a multiple of 4 between 12 and"),
    (1 << 30, f"block length {1 << 30} is not a multiple of 4 between 12 and 16777216"),
])
def test_bad_pcapng_block_lengths_stop_reading(tmp_path, length, expected):
    bad = struct.pack("<II", EPB, length) + b"\0" * 40
    last_frame = enhanced("<", 0, 3, RECORDS[2][2])
    report, frames = read(tmp_path, PCAPNG[: -len(last_frame)] + bad + last_frame)
    assert frames == FIRST_TWO_FRAMES
    assert len(report.problems) == 1 and expected in report.problems[0]
    assert report.problems[0].startswith("block 5 at byte offset ")


def test_pcapng_trailing_length_mismatch(tmp_path):
    damaged = bytearray(PCAPNG)
    damaged[-4:] = struct.pack("<I", 999)
    report, frames = read(tmp_path, bytes(damaged))
    assert frames == FIRST_TWO_FRAMES
    assert len(report.problems) == 1 and "trailing block length 999 differs from 76" in report.problems[0]


def test_pcapng_caplen_past_its_block(tmp_path):
    too_long = struct.pack("<IIIII", 0, 0, 0, 500, 500) + b"x" * 8
    report, frames = read(tmp_path, PCAPNG + block("<", EPB, too_long) + enhanced("<", 0, 1, b"never read"))
    assert frames == [record[2] for record in RECORDS]
    assert len(report.problems) == 1 and "caplen 500 runs past the end of its 40-byte block" in report.problems[0]


def test_pcapng_blocks_shorter_than_their_fixed_fields(tmp_path):
    report, frames = read(tmp_path, PCAPNG + block("<", IDB, b"\1\0"))
    assert frames == [record[2] for record in RECORDS]
    assert len(report.problems) == 1 and "block of type 1 too short (16 bytes)" in report.problems[0]


def test_pcapng_bad_byte_order_magic(tmp_path):
    bad_section = bytearray(section())
    bad_section[8:12] = b"\xde\xad\xbe\xef"
    report, frames = read(tmp_path, PCAPNG + bytes(bad_section) + PCAPNG_HEAD)
    assert frames == [record[2] for record in RECORDS]
    assert report.problems == [f"block 6 at byte offset {len(PCAPNG)}: "
                               "section header with a bad byte-order magic deadbeef; rest of file not read"]


def test_zero_length_pcapng_frames_are_kept(tmp_path):
    report, frames = read(tmp_path, PCAPNG_HEAD + enhanced("<", 0, 1, b"") + enhanced("<", 0, 2, b"after"))
    assert report.ok and frames == [b"", b"after"]


def test_damaged_gzip_stream_keeps_what_decompressed_before_the_damage(tmp_path):
    capture = pcap_bytes([(i, 0, bytes([i % 256]) * 200, 200) for i in range(2000)])
    packed = gzip.compress(capture)
    report, frames = read(tmp_path, packed[: len(packed) // 2], "cut.pcap.gz")
    assert 0 < len(frames) < 2000
    assert frames == [bytes([i % 256]) * 200 for i in range(len(frames))]
    assert report.problems[0].startswith("gzip stream damaged after ")
    assert "compressed stream ends early" in report.problems[0]

    corrupt = bytearray(packed)
    corrupt[len(packed) // 2 : len(packed) // 2 + 50] = b"\xff" * 50
    report, frames = read(tmp_path, bytes(corrupt), "corrupt.pcap.gz")
    assert frames == [bytes([i % 256]) * 200 for i in range(len(frames))]
    assert report.problems and report.problems[0].startswith("gzip stream damaged after ")


def test_gzip_members_one_after_another_and_gzip_of_nothing(tmp_path):
    report, frames = read(tmp_path, gzip.compress(PCAP[:50]) + gzip.compress(PCAP[50:]), "two-members.pcap.gz")
    assert report.ok and frames == [record[2] for record in RECORDS]
    report, frames = read(tmp_path, gzip.compress(b""), "empty.gz")
    assert report.problems == ["empty file"] and frames == []
    report, frames = read(tmp_path, b"\x1f\x8b", "just-the-magic.gz")
    assert frames == [] and len(report.problems) == 1 and "gzip stream damaged" in report.problems[0]
