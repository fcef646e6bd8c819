"""The readers against dpkt's pcap reader on the real captures in ../shared/data."""

from __future__ import annotations

import gzip
from pathlib import Path

import dpkt
import pytest
from test_capture_pcap import read_all

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.shared_data
CAPTURES = {"ustc-tfc2016/Facetime.pcap": 6000, "ustc-tfc2016/Tinba.pcap": 22000}


def capture_path(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"real capture {path} is absent")
    return path


def read_with_dpkt(path: Path) -> list[tuple[int, int, bytes]]:
    with path.open("rb") as handle:
        reader = dpkt.pcap.Reader(handle)
        return [(round(ts * 1e6) * 1000, reader.datalink(), bytes(buf)) for ts, buf in reader]


@pytest.mark.parametrize("name, count", CAPTURES.items())
def test_frames_match_dpkt(name, count):
    path = capture_path(name)
    expected = read_with_dpkt(path)
    report, frames = read_all(path, chunk_bytes=64 << 10)  # many chunk boundaries
    assert report.ok and report.format == "pcap"
    assert report.frames == len(expected) == count
    assert report.bytes == sum(len(frame) for *_, frame in expected)
    assert [(ts, linktype, data) for ts, linktype, data, _ in frames] == expected
    assert min(len(data) for *_, data in expected) < 14 or name.endswith("Facetime.pcap")  # Tinba has a 4-byte frame


@pytest.mark.parametrize("name", CAPTURES)
def test_gzip_and_pcapng_copies_read_the_same(name, tmp_path):
    path = capture_path(name)
    _, frames = read_all(path)
    packed = tmp_path / "copy.pcap.gz"
    packed.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
    assert read_all(packed)[1] == frames

    converted = tmp_path / "copy.pcapng"
    with path.open("rb") as source, converted.open("wb") as target:
        reader = dpkt.pcap.Reader(source)
        writer = dpkt.pcapng.Writer(target, snaplen=reader.snaplen, linktype=reader.datalink())
        for ts, buf in reader:
            writer.writepkt(buf, ts=ts)
    report, converted_frames = read_all(converted)
    assert report.ok and report.format == "pcapng"
    assert [frame[:3] for frame in converted_frames] == [frame[:3] for frame in frames]  # dpkt writes no wire lengths
