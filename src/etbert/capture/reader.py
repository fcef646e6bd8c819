"""Reading captures: find the capture files, tell pcap from pcapng by the magic, stream their frames.

A capture is read in chunks of a few MiB, never whole: the parser of its format takes every complete
record of a chunk, and the incomplete one at its end is carried over to the next chunk. Frames are
views into the chunk they were read from. Damaged content never raises: the parsers keep every frame
before the damage and write one line per problem into the CaptureReport.
"""

from __future__ import annotations

import errno
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from etbert.capture.frames import CaptureReport, FrameBatch
from etbert.capture.pcap import MAGICS, Parsed, PcapParser
from etbert.capture.pcapng import SECTION_HEADER, PcapngParser

CHUNK_BYTES = 4 << 20
GZIP_MAGIC = b"\x1f\x8b"
PCAPNG_MAGIC = SECTION_HEADER.to_bytes(4, "little")
MAGIC_LEN = 4
GZIP_READ_BYTES = 1 << 20  # compressed bytes read at a time
GZIP_WBITS = 16 + zlib.MAX_WBITS  # zlib's way of asking for a gzip header and trailer


def iter_capture_files(root: Path) -> list[Path]:
    """``root`` itself when it is a file; else every regular, non-hidden file below it, sorted by relative path.

    Extensions are not looked at: the magic decides later whether a file is a capture.
    """
    root = Path(root)
    if not root.is_dir():
        if not root.exists():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(root))
        return [root]
    files = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for name in names:
            path = Path(directory, name)
            if not name.startswith(".") and path.is_file():
                files.append(path)
    return sorted(files, key=lambda path: path.relative_to(root).parts)


def read_frames(
    path, report: CaptureReport, batch_frames: int = 65536, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[FrameBatch]:
    """Stream the frames of one capture (pcap or pcapng, either possibly gzip-compressed) in batches.

    Sets ``report.format`` and counts frames and captured bytes into ``report`` as batches are yielded.
    A missing path raises FileNotFoundError and a directory IsADirectoryError, both at once; bad
    content never raises. ``chunk_bytes`` is how much is read at a time (at least one whole record).
    """
    path = Path(path)
    if stat.S_ISDIR(path.stat().st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    return _read_file(path, report, batch_frames, chunk_bytes)


class PlainStream:
    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.at_eof = False

    def read(self, size: int) -> bytes:
        """``size`` bytes, fewer only at the end of the file (then ``at_eof`` is set)."""
        data = self.raw.read(size)
        self.at_eof = len(data) < size
        return data

    def read_after(self, carried: bytes, size: int) -> bytearray:
        """``carried`` followed by the next ``size`` bytes, read in place (no copy of a whole chunk)."""
        chunk = bytearray(len(carried) + size)
        chunk[: len(carried)] = carried
        view = memoryview(chunk)
        got = 0
        while got < size:  # a raw read may return less than asked before the end of the file
            count = self.raw.readinto(view[len(carried) + got :])
            if not count:
                break
            got += count
        view.release()
        del chunk[len(carried) + got :]
        self.at_eof = got < size
        return chunk


class GzipStream:
    """Decompresses gzip members one after another as they are read, in bounded memory.

    Damage (a corrupt or cut-off stream) ends the stream after everything decompressed before it,
    with one problem line.
    """

    def __init__(self, raw: BinaryIO, report: CaptureReport):
        self.raw = raw
        self.report = report
        self.inflater = zlib.decompressobj(wbits=GZIP_WBITS)
        self.pending = b""  # compressed bytes read but not yet decompressed
        self.member_open = False  # a member was started and has not ended yet
        self.position = 0  # decompressed bytes handed out
        self.at_eof = False

    def read(self, size: int) -> bytes:
        """``size`` bytes, fewer only at the end of the stream (then ``at_eof`` is set)."""
        pieces, wanted = [], size
        while wanted > 0 and not self.at_eof:
            if not self.pending:
                self.pending = self.raw.read(GZIP_READ_BYTES)
                if not self.pending:
                    if self.member_open:
                        self._damaged("compressed stream ends early")
                    self.at_eof = True
                    break
            try:
                piece = self.inflater.decompress(self.pending, wanted)
            except zlib.error as error:
                self._damaged(str(error))
                break
            self.member_open = True
            self.pending = self.inflater.unconsumed_tail
            if self.inflater.eof:  # another member may follow
                self.pending = self.inflater.unused_data + self.pending
                self.inflater = zlib.decompressobj(wbits=GZIP_WBITS)
                self.member_open = False
            pieces.append(piece)
            wanted -= len(piece)
            self.position += len(piece)
        return b"".join(pieces)

    def read_after(self, carried: bytes, size: int) -> bytes:
        return carried + self.read(size)

    def _damaged(self, what: str) -> None:
        self.report.problems.append(
            f"gzip stream damaged after {self.position} decompressed bytes: {what}; rest of file not read")
        self.at_eof = True


def _read_file(path: Path, report: CaptureReport, batch_frames: int, chunk_bytes: int) -> Iterator[FrameBatch]:
    with open(path, "rb") as raw:
        compressed = raw.read(len(GZIP_MAGIC)) == GZIP_MAGIC
        raw.seek(0)
        stream = GzipStream(raw, report) if compressed else PlainStream(raw)
        yield from _read_stream(stream, report, batch_frames, chunk_bytes)


def _read_stream(
    stream: PlainStream | GzipStream, report: CaptureReport, batch_frames: int, chunk_bytes: int
) -> Iterator[FrameBatch]:
    chunk = stream.read(chunk_bytes)
    parser = _parser_for(chunk, report)
    if parser is None:
        return
    report.format = parser.format
    chunk_offset = 0
    while True:
        parsed: Parsed = parser.parse(chunk, chunk_offset, stream.at_eof)
        if parsed.batch is not None:
            report.frames += len(parsed.batch)
            report.bytes += int(parsed.batch.caplen.sum(dtype=np.int64))
            yield from _split(parsed.batch, batch_frames)
        if parsed.stop:
            return
        # Carry the incomplete record over; read at least enough to complete it.
        carried = chunk[parsed.end :]
        chunk_offset += parsed.end
        chunk = stream.read_after(carried, max(chunk_bytes, parsed.need - len(carried)))


def _parser_for(chunk: bytes, report: CaptureReport) -> PcapParser | PcapngParser | None:
    magic = chunk[:MAGIC_LEN]
    if magic in MAGICS:
        return PcapParser(magic, report)
    if magic == PCAPNG_MAGIC:
        return PcapngParser(report)
    if chunk:
        report.problems.append(f"not a pcap or pcapng file (first bytes: {chunk[:8].hex(' ')})")
    elif not report.problems:  # an unreadable stream has said so already
        report.problems.append("empty file")
    return None


def _split(batch: FrameBatch, size: int) -> Iterator[FrameBatch]:
    """Batches of at most ``size`` frames, all sharing the buffer."""
    if len(batch) <= size:
        yield batch
        return
    for start in range(0, len(batch), size):
        rows = slice(start, start + size)
        yield FrameBatch(batch.buffer, batch.offset[rows], batch.caplen[rows], batch.wirelen[rows],
                         batch.ts_ns[rows], batch.linktype[rows])
