"""Properties of the readers over arbitrary bytes and over valid files that were cut or corrupted."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_capture_pcap import pcap_bytes
from test_capture_pcapng import enhanced, interface, obsolete, section, simple, unknown

from etbert.capture.frames import CaptureReport
from etbert.capture.pcap import MAGICS
from etbert.capture.reader import read_frames

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
chunk_sizes = st.sampled_from([13, 64, 200, 4096])


def read_checked(path, data: bytes, chunk_bytes: int) -> tuple[CaptureReport, list[bytes]]:
    """Frames read from ``data``, checking that none reaches past its data or outside the file."""
    path.write_bytes(data)
    report = CaptureReport(str(path))
    frames = []
    for batch in read_frames(path, report, batch_frames=5, chunk_bytes=chunk_bytes):
        assert ((batch.caplen >= 0) & (batch.offset >= 0) & (batch.offset + batch.caplen <= len(batch.buffer))).all()
        assert (batch.wirelen >= batch.caplen).all()
        frames += [batch.frame(i) for i in range(len(batch))]
    assert all(frame in data for frame in frames)
    assert report.frames == len(frames) and report.bytes == sum(map(len, frames))
    assert report.is_capture or (not frames and len(report.problems) == 1)
    return report, frames


arbitrary = st.one_of(
    st.binary(max_size=600),
    st.builds(lambda magic, rest: magic + rest, st.sampled_from([*MAGICS, PCAPNG_MAGIC]), st.binary(max_size=600)),
    st.builds(lambda rest: section() + rest, st.binary(max_size=600)),
    st.builds(lambda rest: section(">") + interface(">", 1) + rest, st.binary(max_size=600)),
)


@SETTINGS
@given(data=arbitrary, chunk_bytes=chunk_sizes)
def test_arbitrary_bytes_never_raise(tmp_path, data, chunk_bytes):
    read_checked(tmp_path / "arbitrary", data, chunk_bytes)


frame_data = st.lists(st.binary(max_size=90), min_size=1, max_size=12)


@st.composite
def pcap_files(draw) -> tuple[bytes, list[bytes], list[int], set[int]]:
    """A valid pcap file of any variant, its frames, the file offset where each frame's record ends, and
    the offsets where the file could end without damage."""
    magic = draw(st.sampled_from(list(MAGICS)))
    variant = MAGICS[magic]
    frames = draw(frame_data)
    extra = b"\0" * (variant.record_header_len - 16)
    data = pcap_bytes([(i, i, frame, len(frame)) for i, frame in enumerate(frames)], variant.order,
                      magic=struct.unpack(variant.order + "I", magic)[0], extra_header=extra)
    ends = [24 + sum(variant.record_header_len + len(f) for f in frames[: i + 1]) for i in range(len(frames))]
    return data, frames, ends, {24, *ends}


@st.composite
def pcapng_files(draw) -> tuple[bytes, list[bytes], list[int], set[int]]:
    """A valid pcapng file (sections, interfaces, unknown blocks, all packet block kinds), its frames,
    the file offset where each frame's block ends, and the offsets where the file could end without damage."""
    blocks: list[bytes] = []
    frames, ends = [], []
    for order in draw(st.lists(st.sampled_from("<>"), min_size=1, max_size=3)):
        blocks.append(section(order))
        interfaces = draw(st.integers(1, 3))
        blocks += [interface(order, 1 + i, tsresol=draw(st.sampled_from([6, 9, 0x80 | 20]))) for i in range(interfaces)]
        for frame in draw(frame_data):
            kind = draw(st.sampled_from(["enhanced", "obsolete", "simple", "unknown"]))
            if kind == "unknown":
                blocks.append(unknown(order, size=len(frame)))
                continue
            ticks = draw(st.integers(0, 2**63))
            if kind == "enhanced":
                blocks.append(enhanced(order, draw(st.integers(0, interfaces - 1)), ticks, frame))
            elif kind == "obsolete":
                blocks.append(obsolete(order, draw(st.integers(0, interfaces - 1)), ticks, frame))
            else:
                blocks.append(simple(order, frame))
            frames.append(frame)
            ends.append(sum(map(len, blocks)))
    boundaries = {sum(map(len, blocks[: i + 1])) for i in range(len(blocks))}
    return b"".join(blocks), frames, ends, boundaries


valid_files = st.one_of(pcap_files(), pcapng_files())


@SETTINGS
@given(file=valid_files, chunk_bytes=chunk_sizes)
def test_valid_files_read_whole(tmp_path, file, chunk_bytes):
    data, frames, *_ = file
    report, read = read_checked(tmp_path / "valid", data, chunk_bytes)
    assert report.ok and read == frames


@SETTINGS
@given(file=valid_files, cut=st.floats(0, 1, exclude_max=True), chunk_bytes=chunk_sizes)
def test_truncated_files_keep_every_whole_frame(tmp_path, file, cut, chunk_bytes):
    data, frames, ends, boundaries = file
    cut_at = int(len(data) * cut)
    report, read = read_checked(tmp_path / "cut", data[:cut_at], chunk_bytes)
    whole = sum(end <= cut_at for end in ends)
    assert read == frames[:whole]
    assert len(report.problems) == (0 if cut_at in boundaries else 1)


@SETTINGS
@given(file=valid_files, where=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255), chunk_bytes=chunk_sizes)
def test_corrupted_files_keep_every_frame_before_the_damage(tmp_path, file, where, flip, chunk_bytes):
    data, frames, ends, _ = file
    damaged = bytearray(data)
    at = int(len(data) * where)
    damaged[at] ^= flip
    _, read = read_checked(tmp_path / "corrupt", bytes(damaged), chunk_bytes)
    before = sum(end <= at for end in ends)
    assert read[:before] == frames[:before]
