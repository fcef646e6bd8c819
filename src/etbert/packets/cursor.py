"""Reading headers of many frames at once from a FrameBatch's shared buffer.

A Cursor points at the start of the next header in each of a subset of frames. Positions are
absolute in the buffer, so reading a header is a single fancy index: the buffer is seen as
overlapping fixed-size records starting at every byte, and the records at the cursor positions are
gathered and viewed through a structured dtype (a header layout) whose fields are the header's fields.
Callers check ``fits`` before ``read``: a read is only ever made inside the frame it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from etbert.capture.frames import FrameBatch


def header_layout(length: int, /, **fields: tuple[int, str]) -> np.dtype:
    """A structured dtype of ``length`` bytes with fields ``name=(offset, format)``; formats are
    NumPy's: "u1", ">u2" and ">u4" for big-endian network fields, "V4"/"V16" for addresses."""
    return np.dtype(
        {
            "names": list(fields),
            "formats": [fmt for _, fmt in fields.values()],
            "offsets": [offset for offset, _ in fields.values()],
            "itemsize": length,
        }
    )


@dataclass(frozen=True)
class Cursor:
    buffer: np.ndarray  # uint8, the batch's shared buffer (contiguous)
    rows: np.ndarray  # int64, which frames of the batch
    start: np.ndarray  # int64, absolute start of each frame
    end: np.ndarray  # int64, absolute end of the captured bytes of each frame
    at: np.ndarray  # int64, absolute start of the next header

    @classmethod
    def frame_starts(cls, frames: FrameBatch, rows: np.ndarray) -> "Cursor":
        start = frames.offset[rows].astype(np.int64)
        return cls(np.ascontiguousarray(frames.buffer), rows, start, start + frames.caplen[rows], start)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def offset(self) -> np.ndarray:
        """Position of the next header from the start of its frame."""
        return self.at - self.start

    def fits(self, length) -> np.ndarray:
        """Whether ``length`` bytes from the cursor were captured (length: int or per-frame array)."""
        return self.at + length <= self.end

    def read(self, layout: np.dtype) -> np.ndarray:
        """The header under the cursor of every frame, as a structured array of ``layout``."""
        records = np.ndarray(
            (max(len(self.buffer) - layout.itemsize + 1, 0),),
            dtype=np.dtype((np.void, layout.itemsize)),
            buffer=self.buffer,
            strides=(1,),
        )
        return records[self.at].view(layout)

    def select(self, mask: np.ndarray) -> "Cursor":
        if mask.all():
            return self
        return Cursor(self.buffer, self.rows[mask], self.start[mask], self.end[mask], self.at[mask])

    def keep(self, mask: np.ndarray, status: np.ndarray, reason: int) -> "Cursor":
        """Frames where ``mask`` holds; the others get ``reason`` written into the batch's ``status``."""
        if mask.all():
            return self
        status[self.rows[~mask]] = reason
        return self.select(mask)

    def advance(self, length) -> "Cursor":
        return Cursor(self.buffer, self.rows, self.start, self.end, self.at + length)

    def moved_to(self, at: np.ndarray) -> "Cursor":
        return Cursor(self.buffer, self.rows, self.start, self.end, at)

    def subset(self, positions: np.ndarray, at: np.ndarray) -> "Cursor":
        """A cursor over some ``positions`` of this one (its ``rows`` are those positions, not batch
        rows), at ``at[positions]``: header chains are walked this way and written back by position."""
        return Cursor(self.buffer, positions, self.start[positions], self.end[positions], at[positions])

    @staticmethod
    def concat(parts: list["Cursor"]) -> "Cursor":
        if len(parts) == 1:
            return parts[0]
        fields = [np.concatenate([getattr(p, name) for p in parts]) for name in ("rows", "start", "end", "at")]
        return Cursor(parts[0].buffer, *fields)
