"""The contract between capture readers and the packet decoder."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class FrameBatch:
    """Frames read from one capture, sharing one byte buffer so decoding can be vectorised.

    Frame i occupies ``buffer[offset[i] : offset[i] + caplen[i]]``.
    """

    buffer: np.ndarray  # uint8
    offset: np.ndarray  # int64, start of each frame in buffer
    caplen: np.ndarray  # int32, bytes captured
    wirelen: np.ndarray  # int32, bytes on the wire (>= caplen when the snaplen cut the frame)
    ts_ns: np.ndarray  # int64, nanoseconds since the Unix epoch
    linktype: np.ndarray  # int32, LINKTYPE_* of the interface each frame came from

    def __len__(self) -> int:
        return len(self.offset)

    def frame(self, i: int) -> bytes:
        start = int(self.offset[i])
        return self.buffer[start : start + int(self.caplen[i])].tobytes()

    @classmethod
    def from_frames(cls, frames: list[tuple[int, int, bytes]], wirelens: list[int] | None = None) -> "FrameBatch":
        """Build a batch from ``(ts_ns, linktype, frame_bytes)`` triples (tests and small inputs)."""
        caplen = np.array([len(f[2]) for f in frames], dtype=np.int32)
        offset = np.zeros(len(frames), dtype=np.int64)
        if len(frames) > 1:
            offset[1:] = np.cumsum(caplen[:-1], dtype=np.int64)
        buffer = np.frombuffer(b"".join(f[2] for f in frames), dtype=np.uint8)
        return cls(
            buffer=buffer,
            offset=offset,
            caplen=caplen,
            wirelen=np.array(wirelens if wirelens is not None else caplen, dtype=np.int32),
            ts_ns=np.array([f[0] for f in frames], dtype=np.int64),
            linktype=np.array([f[1] for f in frames], dtype=np.int32),
        )


@dataclass
class CaptureReport:
    """What reading one capture file found: counts and one line per problem.

    Readers never raise on bad content: they keep every good frame before the damage,
    record a one-line problem and stop (or skip the bad block where the format allows).
    """

    path: str
    format: str = ""  # "pcap", "pcapng" or "" when the file is not a capture
    frames: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)
    skipped_frames: int = 0  # frames dropped by the reader itself (e.g. unknown interface id)

    @property
    def is_capture(self) -> bool:
        return bool(self.format)

    @property
    def ok(self) -> bool:
        return self.is_capture and not self.problems
