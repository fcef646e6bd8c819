"""pcapng files: a sequence of sections, each a Section Header Block followed by interface and packet blocks.

Every block starts with its type and total length and ends with the length again, so unknown blocks
are skipped by their length. Each section has its own byte order and its own interfaces; a packet
block names its interface by index within the section. Like the pcap parser, the block loop only
notes where each packet block starts and which interface it belongs to; timestamps and lengths are
gathered for the whole chunk at once, per interface (interfaces differ in byte order and resolution).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from etbert.capture.frames import CaptureReport, FrameBatch
from etbert.capture.pcap import Parsed, clamp_wirelen, header_layout, records_at

SECTION_HEADER = 0x0A0D0D0A  # reads the same in both byte orders
INTERFACE_DESCRIPTION = 1
PACKET = 2  # obsolete, still written by old tools
SIMPLE_PACKET = 3
ENHANCED_PACKET = 6

BYTE_ORDER_MAGIC = 0x1A2B3C4D
MIN_BLOCK_LEN = 12  # type, length, trailing length
MAX_BLOCK_LEN = 16 << 20  # Wireshark's limit too: anything longer is damage
PACKET_HEADER_LEN = 28  # enhanced and obsolete packet blocks: data starts here
SIMPLE_HEADER_LEN = 12
MIN_LEN = {SECTION_HEADER: 28, INTERFACE_DESCRIPTION: 20, PACKET: 32, SIMPLE_PACKET: 16, ENHANCED_PACKET: 32}
LONGEST_MIN_LEN = max(MIN_LEN.values())  # blocks at least this long need no look-up

OPT_END = 0
IF_TSRESOL = 9
IF_TSOFFSET = 14
DEFAULT_TSRESOL = 6  # microseconds


class ByteOrder:
    """The structs and record layouts of one byte order."""

    def __init__(self, order: str):
        self.order = order
        self.block_header = struct.Struct(order + "II")
        self.u32 = struct.Struct(order + "I")
        self.enhanced_packet = struct.Struct(order + "8xI8xI")  # interface id, caplen
        self.obsolete_packet = struct.Struct(order + "8xH10xI")  # 16-bit interface id, caplen
        self.interface = struct.Struct(order + "8xHxxI")  # link type, snaplen
        self.option = struct.Struct(order + "HH")
        self.tsoffset = struct.Struct(order + "q")
        self.packet_layout = header_layout(
            order, PACKET_HEADER_LEN, length=4, ts_high=12, ts_low=16, caplen=20, wirelen=24)
        self.simple_layout = header_layout(order, SIMPLE_HEADER_LEN, length=4, wirelen=8)
        self.loop_unpackers = self.block_header.unpack_from, self.u32.unpack_from, self.enhanced_packet.unpack_from


BYTE_ORDERS = {"<": ByteOrder("<"), ">": ByteOrder(">")}
BYTE_ORDER_MARKS = {struct.pack(order + "I", BYTE_ORDER_MAGIC): byte_order for order, byte_order in BYTE_ORDERS.items()}


@dataclass(frozen=True)
class Interface:
    byte_order: ByteOrder
    linktype: int
    snaplen: int  # 0: unlimited
    tsresol: int = DEFAULT_TSRESOL  # if_tsresol: 10^-n seconds, or 2^-n with the top bit set
    tsoffset_ns: int = 0


def ticks_to_ns(ticks: np.ndarray, tsresol: int) -> np.ndarray:
    """Convert uint64 timestamps in units of ``tsresol`` (the if_tsresol byte) to int64 nanoseconds.

    Values too large for int64 nanoseconds wrap instead of raising: they come only from damaged files.
    """
    exponent = tsresol & 0x7F
    if not tsresol & 0x80:
        if exponent <= 9:
            return ticks.astype(np.int64) * 10 ** (9 - exponent)
        if exponent - 9 > 19:  # finer than 10^-28 s: every uint64 count is below one nanosecond
            return np.zeros(len(ticks), dtype=np.int64)
        return (ticks // np.uint64(10 ** (exponent - 9))).astype(np.int64)
    # Power-of-two units: split whole seconds from the fraction so fraction * 10^9 fits 64 bits.
    seconds = ticks >> np.uint64(exponent) if exponent < 64 else np.zeros_like(ticks)
    fraction = ticks & np.uint64((1 << min(exponent, 64)) - 1)
    fraction_bits = min(exponent, 33)
    if exponent > fraction_bits:
        drop = exponent - fraction_bits
        fraction = fraction >> np.uint64(drop) if drop < 64 else np.zeros_like(ticks)
    nanos = (fraction * np.uint64(1_000_000_000)) >> np.uint64(fraction_bits)
    return (seconds * np.uint64(1_000_000_000) + nanos).astype(np.int64)


def wrap_int64(value: int) -> int:
    return (value + 2**63) % 2**64 - 2**63


class PcapngParser:
    """Parses a pcapng file chunk by chunk; keeps sections and interfaces between chunks."""

    format = "pcapng"

    def __init__(self, report: CaptureReport):
        self.report = report
        self.byte_order = BYTE_ORDERS["<"]  # set by each section header
        self.interfaces: list[Interface] = []  # every interface of the file, sections one after another
        self.section = 0  # sections seen so far
        self.section_base = 0  # index in self.interfaces of the current section's interface 0
        self.blocks = 0  # blocks consumed so far, frames excluded (counted per chunk), to name a damaged one
        self.undeclared_reported: set[tuple[int, int]] = set()
        self.last_ts_ns = 0  # simple packet blocks carry no timestamp: they take the previous frame's

    def parse(self, chunk: bytes | bytearray, chunk_offset: int, at_eof: bool) -> Parsed:
        """Parse the complete blocks in ``chunk``; ``chunk_offset`` is the chunk's place in the file."""
        pos = 0
        starts: list[int] = []  # block start of each frame
        owners: list[int] = []  # index in self.interfaces of each frame's interface
        simple_rows: list[int] = []  # frames from simple packet blocks
        append_start, append_owner = starts.append, owners.append
        end = len(chunk)
        need = MIN_BLOCK_LEN
        stop = False

        def damage(what: str) -> None:
            self.report.problems.append(
                f"block {self.blocks + len(starts) + 1} at byte offset {chunk_offset + pos}: {what}")

        # Locals for the hot loop; rebound whenever a section or interface block changes them.
        order = self.byte_order
        unpack_header, unpack_u32, unpack_enhanced = order.loop_unpackers
        base, declared = self.section_base, len(self.interfaces) - self.section_base

        while pos + MIN_BLOCK_LEN <= end:
            block_type, length = unpack_header(chunk, pos)
            if block_type == SECTION_HEADER:  # its own byte order decides how its length reads
                order = BYTE_ORDER_MARKS.get(bytes(chunk[pos + 8 : pos + 12]))
                if order is None:
                    damage(f"section header with a bad byte-order magic {chunk[pos + 8 : pos + 12].hex()}; "
                           "rest of file not read")
                    stop = True
                    break
                unpack_header, unpack_u32, unpack_enhanced = order.loop_unpackers
                block_type, length = unpack_header(chunk, pos)
            if length < MIN_BLOCK_LEN or length & 3 or length > MAX_BLOCK_LEN:
                damage(f"block length {length} is not a multiple of 4 between {MIN_BLOCK_LEN} and {MAX_BLOCK_LEN}; "
                       "rest of file not read")
                stop = True
                break
            following = pos + length
            if following > end:
                need = length
                break
            (trailing,) = unpack_u32(chunk, following - 4)
            if trailing != length:
                damage(f"trailing block length {trailing} differs from {length}; rest of file not read")
                stop = True
                break
            if length < LONGEST_MIN_LEN and length < MIN_LEN.get(block_type, MIN_BLOCK_LEN):
                damage(f"block of type {block_type} too short ({length} bytes); rest of file not read")
                stop = True
                break

            if block_type == ENHANCED_PACKET or block_type == PACKET:
                interface_id, caplen = (unpack_enhanced if block_type == ENHANCED_PACKET
                                        else order.obsolete_packet.unpack_from)(chunk, pos)
                if caplen > length - PACKET_HEADER_LEN - 4:
                    damage(f"caplen {caplen} runs past the end of its {length}-byte block; rest of file not read")
                    stop = True
                    break
                if interface_id < declared:
                    append_start(pos)
                    append_owner(base + interface_id)
                else:
                    self._skip_frame(interface_id, damage)
            elif block_type == SIMPLE_PACKET:
                if declared:
                    simple_rows.append(len(starts))
                    append_start(pos)
                    append_owner(base)
                else:
                    self._skip_frame(0, damage)
            else:
                if block_type == SECTION_HEADER:
                    self._start_section(order)
                elif block_type == INTERFACE_DESCRIPTION:
                    self._add_interface(chunk, pos, length, damage)
                self.blocks += 1
                base, declared = self.section_base, len(self.interfaces) - self.section_base
            pos = following

        if not stop and at_eof and pos < end:
            damage(f"truncated (needs {need} bytes, the file ends after {end - pos})")
            stop = True
        batch = self._batch(chunk, starts, owners, simple_rows)
        self.blocks += len(starts)
        return Parsed(batch, pos, need, stop or at_eof)

    def _skip_frame(self, interface_id: int, damage) -> None:
        self.report.skipped_frames += 1
        if (self.section, interface_id) not in self.undeclared_reported:
            self.undeclared_reported.add((self.section, interface_id))
            damage(f"frame on undeclared interface {interface_id} of section {self.section}; "
                   "such frames are skipped (counted in skipped_frames)")
        self.blocks += 1

    def _start_section(self, order: ByteOrder) -> None:
        self.byte_order = order
        self.section += 1
        self.section_base = len(self.interfaces)

    def _add_interface(self, chunk: bytes | bytearray, pos: int, length: int, damage) -> None:
        order = self.byte_order
        linktype, snaplen = order.interface.unpack_from(chunk, pos)
        tsresol, tsoffset_ns = DEFAULT_TSRESOL, 0
        option, options_end = pos + 16, pos + length - 4
        while option + 4 <= options_end:
            code, size = order.option.unpack_from(chunk, option)
            if code == OPT_END:
                break
            value = option + 4
            if value + size > options_end:
                damage("interface options run past the end of the block; the rest of them are ignored")
                break
            if code == IF_TSRESOL and size >= 1:
                tsresol = chunk[value]
            elif code == IF_TSOFFSET and size >= 8:
                tsoffset_ns = wrap_int64(order.tsoffset.unpack_from(chunk, value)[0] * 1_000_000_000)
            option = value + (size + 3) // 4 * 4
        self.interfaces.append(Interface(order, linktype, snaplen, tsresol, tsoffset_ns))

    def _batch(self, chunk: bytes | bytearray, starts: list[int], owners: list[int],
               simple_rows: list[int]) -> FrameBatch | None:
        if not starts:
            return None
        buffer = np.frombuffer(chunk, dtype=np.uint8)
        positions = np.array(starts, dtype=np.int64)
        owner = np.array(owners, dtype=np.int64)
        simple = np.zeros(len(starts), dtype=bool)
        simple[simple_rows] = True
        caplen = np.empty(len(starts), dtype=np.int32)
        wirelen = np.empty(len(starts), dtype=np.uint32)
        ts_ns = np.zeros(len(starts), dtype=np.int64)
        for index in np.unique(owner):
            interface = self.interfaces[index]
            rows = owner == index
            packets, simples = rows & ~simple, rows & simple
            if packets.any():
                headers = records_at(buffer, positions[packets], interface.byte_order.packet_layout)
                caplen[packets] = headers["caplen"]
                wirelen[packets] = headers["wirelen"]
                ticks = (headers["ts_high"].astype(np.uint64) << np.uint64(32)) | headers["ts_low"]
                ts_ns[packets] = ticks_to_ns(ticks, interface.tsresol) + interface.tsoffset_ns
            if simples.any():
                headers = records_at(buffer, positions[simples], interface.byte_order.simple_layout)
                room = headers["length"].astype(np.int64) - SIMPLE_HEADER_LEN - 4
                captured = np.minimum(headers["wirelen"], room)
                if interface.snaplen:
                    captured = np.minimum(captured, interface.snaplen)
                caplen[simples] = captured
                wirelen[simples] = headers["wirelen"]
        if simple_rows:
            ts_ns = self._fill_simple_timestamps(ts_ns, simple)
        self.last_ts_ns = int(ts_ns[-1])
        linktypes = np.array([interface.linktype for interface in self.interfaces], dtype=np.int32)
        return FrameBatch(
            buffer=buffer,
            offset=positions + np.where(simple, SIMPLE_HEADER_LEN, PACKET_HEADER_LEN),
            caplen=caplen,
            wirelen=clamp_wirelen(caplen, wirelen),
            ts_ns=ts_ns,
            linktype=linktypes[owner],
        )

    def _fill_simple_timestamps(self, ts_ns: np.ndarray, simple: np.ndarray) -> np.ndarray:
        """Give each simple-packet frame the timestamp of the last timestamped frame before it."""
        source = np.maximum.accumulate(np.where(simple, -1, np.arange(len(ts_ns))))
        # Index 0 of the extended array is the last timestamp of earlier chunks (source -1).
        return np.concatenate(([self.last_ts_ns], ts_ns))[source + 1]
