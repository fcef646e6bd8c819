"""The flow meter: the single place where packets become bidirectional flows.

Per batch, packets run in capture order through the flow rules and statistics in a compiled loop
(`etbert.flows.packet_loop`), which finds each packet's open flow by its direction-free 5-tuple in a
compiled hash table (`etbert.flows.key_table`); finished
flows become Arrow record batches, in the order of their first packets. State carried between batches
lives in a slot table (one record per open flow), so memory grows with the number of *active* flows,
never with the size of the capture.

Rules that end a flow (defaults follow nfstream):
- idle timeout: no packet for ``idle_timeout`` seconds;
- active timeout: the flow has lasted ``active_timeout`` seconds;
- TCP close: once a FIN or RST was seen, a new SYN (without ACK) or a pause longer than
  ``close_grace`` starts a new flow, while stragglers (the last ACKs) still join the closed one.

Gaps are measured on each flow's own packets, so a capture whose timestamps go backwards (files
concatenated out of time order) still keeps its flows whole. Between batches, flows expire against
the latest timestamp seen; where timestamps go back by more than the idle timeout, that expiry may
end a flow that one batch would have kept together. Captures written in time order meter the same
whatever the batch boundaries (a property test checks it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from etbert.flows.arrays import copy_ranges, gather_ranges, grouped_order, range_offsets
from etbert.flows.key_table import KEY_WORDS, forget_slots, index_slots, new_index
from etbert.flows.packet_loop import (
    BURSTS,
    CUT_CLOSED,
    CUT_IDLE,
    CUTS,
    FREE,
    NEXT,
    OPENED,
    STORED,
    FlowTable,
    PacketColumns,
    loop_output,
    meter_packets,
)
from etbert.flows.record_loop import SCHEMA_COLUMNS, empty_columns, take_records
from etbert.flows.schema import END_REASONS, FLOW_SCHEMA
from etbert.packets.addresses import format_addresses
from etbert.packets.batch import PacketBatch, Status

NS = 1_000_000_000
_FRAGMENT_MEMORY = 65536  # first fragments remembered so later fragments can find their ports


@dataclass(frozen=True)
class MeterConfig:
    idle_timeout: float = 120.0
    active_timeout: float = 1800.0
    close_grace: float = 4.0
    max_packets: int = 10  # K: packets per flow kept with their bytes
    max_packet_bytes: int = 1024  # bytes kept per packet, from the IP header on
    max_bursts: int = 64  # bursts per flow kept as sizes

    def __post_init__(self):
        if self.idle_timeout <= 0 or self.active_timeout <= 0 or self.close_grace < 0:
            raise ValueError("timeouts must be positive")
        if self.max_packets < 1 or self.max_packet_bytes < 1 or self.max_bursts < 1:
            raise ValueError("max_packets, max_packet_bytes and max_bursts must be at least 1")


@dataclass
class MeterCounters:
    frames: int = 0
    packets: int = 0  # frames that joined a flow
    status: dict[str, int] = field(default_factory=dict)  # frames per decoder Status name
    orphan_fragments: int = 0  # later fragments whose first fragment was never seen
    flows: int = 0

    def add_status(self, counts: np.ndarray) -> None:
        for status in Status:
            if counts[status]:
                self.status[status.name.lower()] = self.status.get(status.name.lower(), 0) + int(counts[status])


# Per-slot state: name -> (dtype, trailing shape, value of an empty slot).
_SLOT_FIELDS = {
    "key": (np.uint64, (KEY_WORDS,), 0),  # the direction-free 5-tuple, as the key table compares it
    "key_hash": (np.uint64, (), 0),
    "opened_by": (np.int64, (), 0),  # number of the flow's first packet in the capture: flows leave in this order
    "start_ns": (np.int64, (), 0),
    "last_ns": (np.int64, (), 0),
    "linktype": (np.int32, (), 0),
    "ip_version": (np.uint8, (), 0),
    "protocol": (np.uint8, (), 0),
    "client_is_lo": (bool, (), False),
    "client_addr": (np.uint8, (16,), 0),
    "server_addr": (np.uint8, (16,), 0),
    "client_port": (np.uint16, (), 0),
    "server_port": (np.uint16, (), 0),
    "packets": (np.int64, (2,), 0),
    "bytes": (np.int64, (2,), 0),
    "payload": (np.int64, (2,), 0),
    # Running moments (count, mean, sum of squared deviations, min, max), merged with Chan's formula.
    **{
        f"{prefix}_{name}": (dtype, shape, empty)
        for prefix, shape in (("len", (2,)), ("iat", ()), ("diat", (2,)))
        for name, dtype, empty in (
            ("n", np.int64, 0),
            ("mean", np.float64, 0.0),
            ("m2", np.float64, 0.0),
            ("min", np.float64, np.inf),
            ("max", np.float64, -np.inf),
        )
    },
    "dir_last_ns": (np.int64, (2,), -1),
    "flags": (np.int32, (8,), 0),
    "fin_dir": (np.int32, (2,), 0),
    "fragments": (np.int32, (), 0),
    "terminated": (bool, (), False),  # FIN or RST seen
    "bursts_closed": (np.int32, (), 0),
    "burst_dir": (np.int8, (), -1),  # direction of the open burst, -1 before the first packet
    "burst_packets": (np.int32, (), 0),
    "burst_bytes": (np.int64, (), 0),
}

# One record per slot: a packet's update in the per-packet loop stays within a few cache lines.
_SLOT_DTYPE = np.dtype([(name, dtype, shape) for name, (dtype, shape, _) in _SLOT_FIELDS.items()])
_EMPTY_SLOT = np.zeros((), dtype=_SLOT_DTYPE)
for _name, (_, _, _empty) in _SLOT_FIELDS.items():
    _EMPTY_SLOT[_name] = _empty
_EMPTY_SLOT_BYTES = _EMPTY_SLOT.reshape(1).view(np.uint8)


def _slot_bytes(slots: np.ndarray) -> np.ndarray:
    """The slot records as rows of raw bytes: NumPy gathers and fills those far faster than records."""
    return slots.view(np.uint8).reshape(len(slots), _SLOT_DTYPE.itemsize)

_PACKET_COLUMNS = ("slot", "direction", "length", "iat", "flags", "l4", "payload", "bstart", "blen")
_BURST_COLUMNS = ("slot", "packets", "bytes")  # rows of a flow in the order its packets and bursts came


class _Table:
    """Rows of equal-length int64 columns (kept packets or closed bursts of open flows).

    Appending is amortised O(1): the capacity doubles. Rows taken out are only marked dead, and the dead
    are dropped when they outnumber the live ones, so that a batch costs no copy of every open flow's rows.
    """

    def __init__(self, columns: tuple[str, ...]):
        self.names = columns
        self.data = {name: np.zeros(1024, dtype=np.int64) for name in columns}
        self.alive = np.zeros(1024, dtype=bool)
        self.size = 0  # rows in use, dead ones included
        self.dead = 0

    def append(self, **values: np.ndarray) -> None:
        count = len(values[self.names[0]])
        for name in self.names:
            self.data[name] = _room_for(self.data[name], self.size, count)
        self.alive = _room_for(self.alive, self.size, count)
        for name in self.names:
            self.data[name][self.size : self.size + count] = values[name]
        self.alive[self.size : self.size + count] = True
        self.size += count

    def take(self, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Remove the live rows where ``mask`` (over the rows in use) is True and return them."""
        rows = np.flatnonzero(mask & self.alive[: self.size])
        taken = {name: self.data[name][rows] for name in self.names}
        self.alive[rows] = False
        self.dead += len(rows)
        if self.dead > self.size - self.dead + 4096:
            live = np.flatnonzero(self.alive[: self.size])
            for name in self.names:
                self.data[name][: len(live)] = self.data[name][live]
            self.alive[: self.size] = False
            self.alive[: len(live)] = True
            self.size, self.dead = len(live), 0
        return taken

    def __getitem__(self, name: str) -> np.ndarray:
        """The column over the rows in use, dead ones included (see ``live``)."""
        return self.data[name][: self.size]

    @property
    def live(self) -> np.ndarray:
        return self.alive[: self.size]


def _room_for(array: np.ndarray, used: int, count: int) -> np.ndarray:
    """``array`` (its first ``used`` entries in use) with room for ``count`` more: itself, or a copy of at
    least twice the size, so that appending is amortised O(1)."""
    if used + count <= len(array):
        return array
    grown = np.zeros(max(2 * len(array), used + count), dtype=array.dtype)
    grown[:used] = array[:used]
    return grown


class _ByteStore:
    """The kept packets' bytes, appended batch by batch (capacity doubles, so appending is amortised O(1))."""

    def __init__(self):
        self.data = np.zeros(1 << 16, dtype=np.uint8)
        self.used = 0
        self._spare = np.zeros(0, dtype=np.uint8)  # what `keep_only` copies into: kept, so memory is reused

    def append_ranges(self, buffer: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Store ``buffer[s : s + n]`` for every (s, n), back to back; returns where each starts in the store
        (and where the last ends)."""
        offsets = range_offsets(lengths) + self.used
        self.data = _room_for(self.data, self.used, int(offsets[-1] - self.used))
        copy_ranges(buffer, starts, lengths, self.data, offsets)
        self.used = int(offsets[-1])
        return offsets

    def keep_only(self, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Drop every byte but the ranges (s, n), which move to the front back to back; returns where each
        starts now (and where the last ends)."""
        offsets = range_offsets(lengths)
        if len(self._spare) < len(self.data):
            self._spare = np.zeros(len(self.data), dtype=np.uint8)
        copy_ranges(self.data, starts, lengths, self._spare, offsets)
        self.data, self._spare = self._spare, self.data
        self.used = int(offsets[-1])
        return offsets


class FlowMeter:
    """Feed it decoded packet batches of one capture in order; it returns finished flows as Arrow batches."""

    def __init__(self, config: MeterConfig | None = None, capture: str = ""):
        self.config = config or MeterConfig()
        self.capture = capture
        self.counters = MeterCounters()
        self._capacity = 0
        self._slots = np.zeros(0, dtype=_SLOT_DTYPE)
        self._in_use = np.zeros(0, dtype=bool)
        self._free = np.zeros(0, dtype=np.int64)  # a stack: the next new flow takes _free[_free_count - 1]
        self._free_count = 0
        self._index = new_index(0)
        self._hash_seed = np.uint64(int.from_bytes(os.urandom(8), "little"))
        self._active = 0
        self._fragment_ports: dict[tuple, tuple[int, int]] = {}
        self._packets = _Table(_PACKET_COLUMNS)
        self._packet_bytes = _ByteStore()
        self._bursts = _Table(_BURST_COLUMNS)
        self._clock = None  # latest timestamp seen, drives expiry
        self._flow_index = 0
        self._grow(1024)

    # ----- public -------------------------------------------------------------------------------

    @property
    def active_flows(self) -> int:
        return self._active

    def add(self, batch: PacketBatch) -> pa.RecordBatch | None:
        self.counters.frames += len(batch)
        self.counters.add_status(np.bincount(batch.status, minlength=len(Status)))
        finished: list[np.ndarray] = []
        reasons: list[np.ndarray] = []
        selected, sport, dport = self._usable_packets(batch)
        if len(selected):
            self.counters.packets += len(selected)
            done, why = self._meter(batch, selected, sport, dport)
            finished.append(done)
            reasons.append(why)
            done, why = self._expired()
            finished.append(done)
            reasons.append(why)
        return self._emit(finished, reasons)

    def flush(self) -> pa.RecordBatch | None:
        """End of capture: every open flow finishes."""
        open_slots = np.flatnonzero(self._in_use)
        return self._emit([open_slots], [np.full(len(open_slots), END_REASONS.index("eof"))])

    # ----- slot table ---------------------------------------------------------------------------

    def _grow(self, capacity: int) -> None:
        slots = np.empty(capacity, dtype=_SLOT_DTYPE)
        rows = _slot_bytes(slots)  # copied as bytes: copying records goes field by field, several times slower
        rows[: self._capacity] = _slot_bytes(self._slots)
        rows[self._capacity :] = _EMPTY_SLOT_BYTES
        self._slots = slots
        self._in_use = np.concatenate([self._in_use, np.zeros(capacity - self._capacity, bool)])
        free = np.empty(capacity, dtype=np.int64)
        free[: self._free_count] = self._free[: self._free_count]
        added = capacity - self._capacity
        free[self._free_count : self._free_count + added] = np.arange(capacity - 1, self._capacity - 1, -1)
        self._free, self._free_count = free, self._free_count + added
        self._index = new_index(capacity)
        index_slots(self._index, self._slots, np.flatnonzero(self._in_use))
        self._capacity = capacity

    def _flow_table(self) -> FlowTable:
        return FlowTable(self._slots, self._in_use, self._index, self._hash_seed, self._free)

    def _release(self, slots: np.ndarray) -> None:
        """The emitted flows' slots (already reset by `take_records`) are free again."""
        self._active -= int(self._in_use[slots].sum())
        self._in_use[slots] = False
        self._free[self._free_count : self._free_count + len(slots)] = slots
        self._free_count += len(slots)

    # ----- per batch ----------------------------------------------------------------------------

    def _usable_packets(self, batch: PacketBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices of packets that join flows, with their ports (later fragments borrow the first's)."""
        sport = batch.sport.copy()
        dport = batch.dport.copy()
        usable = batch.status == Status.OK
        if batch.fragment.any():
            first = np.flatnonzero(usable & batch.fragment)
            for i in first.tolist():
                key = (batch.src[i].tobytes(), batch.dst[i].tobytes(), int(batch.protocol[i]), int(batch.fragment_id[i]))
                self._fragment_ports[key] = (int(sport[i]), int(dport[i]))
            later = np.flatnonzero(batch.status == Status.FRAGMENT)
            for i in later.tolist():
                key = (batch.src[i].tobytes(), batch.dst[i].tobytes(), int(batch.protocol[i]), int(batch.fragment_id[i]))
                ports = self._fragment_ports.get(key)
                if ports is None:
                    self.counters.orphan_fragments += 1
                else:
                    sport[i], dport[i] = ports
                    usable[i] = True
            while len(self._fragment_ports) > _FRAGMENT_MEMORY:
                del self._fragment_ports[next(iter(self._fragment_ports))]
        return np.flatnonzero(usable), sport, dport

    def _meter(self, batch: PacketBatch, selected: np.ndarray, sport_all, dport_all):
        cfg = self.config
        frames = batch.frames
        src = np.take(batch.src, selected, axis=0)  # np.take copies whole rows, ~10x faster than batch.src[selected]
        dst = np.take(batch.dst, selected, axis=0)
        sport = sport_all[selected].astype(np.uint16)
        dport = dport_all[selected].astype(np.uint16)
        protocol = batch.protocol[selected]

        # The sender is the key's lower endpoint when its (address, port) comes first.
        src_words = np.ascontiguousarray(src).view(">u8")
        dst_words = np.ascontiguousarray(dst).view(">u8")
        sender_is_lo = (src_words[:, 0] < dst_words[:, 0]) | (
            (src_words[:, 0] == dst_words[:, 0])
            & ((src_words[:, 1] < dst_words[:, 1]) | ((src_words[:, 1] == dst_words[:, 1]) & (sport <= dport)))
        )

        ts = frames.ts_ns[selected]
        self._clock = int(ts.max()) if self._clock is None else max(self._clock, int(ts.max()))
        length = batch.ip_len[selected].astype(np.int64)
        l3 = batch.l3_offset[selected].astype(np.int64)
        payload_at = batch.payload_offset[selected].astype(np.int64)
        packets = PacketColumns(
            ts=ts, sender_is_lo=sender_is_lo, flags=batch.tcp_flags[selected], protocol=protocol,
            length=length, payload=np.where(payload_at >= 0, np.maximum(length - (payload_at - l3), 0), 0),
            fragment=batch.fragment[selected], linktype=frames.linktype[selected],
            ip_version=batch.ip_version[selected], src=src, dst=dst, src_words=src_words.view(np.uint64),
            dst_words=dst_words.view(np.uint64), sport=sport, dport=dport,
        )
        out = loop_output(len(selected), self._free_count)
        while True:  # the loop stops when it runs out of free slots, to go on once there are more
            meter_packets(packets, self.counters.packets - len(selected), self._flow_table(),
                          round(cfg.idle_timeout * NS), round(cfg.active_timeout * NS), round(cfg.close_grace * NS),
                          cfg.max_packets, cfg.max_bursts, out)
            self._free_count = int(out.counts[FREE])
            if out.counts[NEXT] == len(selected):
                break
            self._grow(2 * self._capacity)
            out.counts[FREE] = self._free_count
        stored, bursts, cuts = int(out.counts[STORED]), int(out.counts[BURSTS]), int(out.counts[CUTS])
        self._active += int(out.counts[OPENED]) - cuts

        self._store_packets(batch, selected[out.stored_packet[:stored]], out.stored_slot[:stored],
                            out.stored_direction[:stored], out.stored_iat[:stored])
        if bursts:
            self._bursts.append(slot=out.burst_slot[:bursts],
                                packets=out.burst_packets[:bursts], bytes=out.burst_bytes[:bursts])
        return out.cut_slot[:cuts], out.cut_reason[:cuts]

    def _store_packets(self, batch: PacketBatch, idx, slot, direction, iat) -> None:
        """Keep the first packets of flows with their bytes from the IP header on (capped)."""
        if not len(idx):
            return
        frames = batch.frames
        l3 = batch.l3_offset[idx].astype(np.int64)
        l4 = batch.l4_offset[idx].astype(np.int64)
        payload_at = batch.payload_offset[idx].astype(np.int64)
        length = batch.ip_len[idx].astype(np.int64)
        frame_start = frames.offset[idx] + l3
        available = frames.caplen[idx].astype(np.int64) - l3
        # stop at the IP length: Ethernet pads short frames to 60 bytes, and those zeros are not the packet's
        available = np.where(length > 0, np.minimum(available, length), available)
        blen = np.clip(available, 0, self.config.max_packet_bytes)
        offsets = self._packet_bytes.append_ranges(frames.buffer, frame_start, blen)
        self._packets.append(
            slot=slot,
            direction=direction,
            length=length,
            iat=iat,
            flags=batch.tcp_flags[idx].astype(np.int64),
            l4=np.where(l4 >= 0, l4 - l3, -1),
            payload=np.where(payload_at >= 0, payload_at - l3, -1),
            bstart=offsets[:-1],
            blen=blen,
        )

    def _expired(self) -> tuple[np.ndarray, np.ndarray]:
        s = self._slots
        open_slots = np.flatnonzero(self._in_use)
        last = s["last_ns"][open_slots]
        idle = last < self._clock - self.config.idle_timeout * NS
        closed = s["terminated"][open_slots] & (last < self._clock - self.config.close_grace * NS)
        done = idle | closed
        return open_slots[done], np.where(idle[done], CUT_IDLE, CUT_CLOSED)

    # ----- emission -----------------------------------------------------------------------------

    def _emit(self, finished: list[np.ndarray], reasons: list[np.ndarray]) -> pa.RecordBatch | None:
        slots = np.concatenate(finished) if finished else np.zeros(0, dtype=np.int64)
        if not len(slots):
            return None
        # Flows leave in the order their first packets came, whichever slots they held (no two flows share
        # a first packet, so any sort gives this order, and the default one is several times faster).
        order = np.argsort(self._slots["opened_by"][slots])
        slots = slots[order]
        why = np.concatenate(reasons).astype(np.int64)[order]
        position = np.full(self._capacity, -1, dtype=np.int64)
        position[slots] = np.arange(len(slots))
        packets = self._packets.take(position[self._packets["slot"]] >= 0)
        # Each flow's rows were stored in the order its packets came, and a stable order by flow keeps it.
        packet_order, packet_counts = grouped_order(position[packets["slot"]], len(slots))
        packets = {name: column[packet_order] for name, column in packets.items()}
        bursts = self._burst_rows(slots, position)
        records = empty_columns(len(slots))
        forget_slots(self._index, self._slots, slots)  # before take_records empties the slots and their keys
        take_records(self._slots, _slot_bytes(self._slots), _EMPTY_SLOT_BYTES, slots, why, records)  # empties slots

        columns: dict[str, np.ndarray | pa.Array] = {name: getattr(records, name) for name in SCHEMA_COLUMNS}
        columns["capture"] = pa.repeat(pa.scalar(self.capture, pa.string()), len(slots))
        columns["flow_index"] = np.arange(self._flow_index, self._flow_index + len(slots))
        columns["client_ip"] = format_addresses(records.client_addr)
        columns["server_ip"] = format_addresses(records.server_addr)
        columns["end_reason"] = _END_REASON_TEXT.take(records.end_code)
        burst_offsets = _offsets(bursts["counts"])
        columns["burst_packets"] = pa.ListArray.from_arrays(burst_offsets, pa.array(bursts["packets"], pa.int32()))
        columns["burst_bytes"] = pa.ListArray.from_arrays(burst_offsets, pa.array(bursts["bytes"], pa.int64()))
        packet_offsets = _offsets(packet_counts)
        for name, source, dtype in (
            ("pkt_direction", "direction", pa.int8()),
            ("pkt_length", "length", pa.int32()),
            ("pkt_tcp_flags", "flags", pa.uint8()),
            ("pkt_l4_offset", "l4", pa.int16()),
            ("pkt_payload_offset", "payload", pa.int16()),
        ):
            columns[name] = pa.ListArray.from_arrays(packet_offsets, pa.array(packets[source], dtype))
        columns["pkt_iat"] = pa.ListArray.from_arrays(packet_offsets, pa.array(packets["iat"] / NS))
        data, byte_offsets = gather_ranges(self._packet_bytes.data, packets["bstart"], packets["blen"])
        binary = pa.Array.from_buffers(
            pa.binary(), len(byte_offsets) - 1, [None, pa.py_buffer(byte_offsets.astype(np.int32)), pa.py_buffer(data)]
        )
        columns["pkt_bytes"] = pa.ListArray.from_arrays(packet_offsets, binary)

        self._flow_index += len(slots)
        self.counters.flows += len(slots)
        self._release(slots)
        self._compact_packet_bytes()
        arrays = [pa.array(columns[f.name], f.type) if not isinstance(columns[f.name], pa.Array) else columns[f.name]
                  for f in FLOW_SCHEMA]
        return pa.RecordBatch.from_arrays(arrays, schema=FLOW_SCHEMA)

    def _burst_rows(self, slots: np.ndarray, position: np.ndarray) -> dict[str, np.ndarray]:
        s = self._slots
        stored = self._bursts.take(position[self._bursts["slot"]] >= 0)
        has_open = (s["burst_dir"][slots] >= 0) & (s["bursts_closed"][slots] < self.config.max_bursts)
        slot = np.concatenate([stored["slot"], slots[has_open]])
        packets = np.concatenate([stored["packets"], s["burst_packets"][slots[has_open]]])
        byte_counts = np.concatenate([stored["bytes"], s["burst_bytes"][slots[has_open]]])
        order, counts = grouped_order(position[slot], len(slots))  # the open burst after the closed ones
        return {"packets": packets[order], "bytes": byte_counts[order], "counts": counts}

    def _compact_packet_bytes(self) -> None:
        """Drop bytes of emitted packets once they outweigh the live ones (amortised O(1) per byte)."""
        live = self._packets.live
        live_bytes = int(self._packets["blen"][live].sum())
        if self._packet_bytes.used > 2 * live_bytes + (1 << 20):
            offsets = self._packet_bytes.keep_only(self._packets["bstart"][live], self._packets["blen"][live])
            self._packets["bstart"][np.flatnonzero(live)] = offsets[:-1]


_END_REASON_TEXT = pa.array(END_REASONS, pa.string())


def _offsets(counts: np.ndarray) -> pa.Array:
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.array(offsets, pa.int32())
