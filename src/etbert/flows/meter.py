"""The flow meter: the single place where packets become bidirectional flows.

Work is vectorised per batch: packets are grouped by their direction-free 5-tuple, cut into flows by
the timeout and TCP-close rules, and their statistics are reduced per flow with NumPy. State carried
between batches lives in a slot table (one slot per open flow), so memory grows with the number of
*active* flows, never with the size of the capture.

Rules that end a flow (defaults follow nfstream):
- idle timeout: no packet for ``idle_timeout`` seconds;
- active timeout: the flow has lasted ``active_timeout`` seconds;
- TCP close: once a FIN or RST was seen, a new SYN (without ACK) or a pause longer than
  ``close_grace`` starts a new flow, while stragglers (the last ACKs) still join the closed one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat

import numpy as np
import pyarrow as pa

from etbert.flows.arrays import (
    change_starts,
    gather_ranges,
    last_marked_before,
    lexsort_ints,
    previous_in_segment,
    rank_in_segment,
    segment_start_positions,
)
from etbert.flows.schema import FLOW_SCHEMA, TCP_FLAG_NAMES
from etbert.packets.addresses import format_addresses
from etbert.packets.batch import PacketBatch, Status
from etbert.protocols import tcp

NS = 1_000_000_000
_KEY = np.dtype([("p", "u1"), ("a", "u1", (16,)), ("ap", ">u2"), ("b", "u1", (16,)), ("bp", ">u2")])
_KEY_BYTES = np.dtype((np.void, _KEY.itemsize))  # a direction-free 5-tuple as one comparable value
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

_PACKET_COLUMNS = ("slot", "rank", "direction", "length", "iat", "flags", "l4", "payload", "bstart", "blen")
_BURST_COLUMNS = ("slot", "rank", "packets", "bytes")


class _Table:
    """Column arrays of equal length, appended to and filtered as a whole."""

    def __init__(self, columns: tuple[str, ...]):
        self.columns = {name: np.zeros(0, dtype=np.int64) for name in columns}

    def append(self, **values: np.ndarray) -> None:
        for name in self.columns:
            self.columns[name] = np.concatenate([self.columns[name], values[name]])

    def take(self, mask: np.ndarray) -> dict[str, np.ndarray]:
        """Remove the rows where mask is True and return them."""
        taken = {name: column[mask] for name, column in self.columns.items()}
        self.columns = {name: column[~mask] for name, column in self.columns.items()}
        return taken

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]


class FlowMeter:
    """Feed it decoded packet batches of one capture in order; it returns finished flows as Arrow batches."""

    def __init__(self, config: MeterConfig | None = None, capture: str = ""):
        self.config = config or MeterConfig()
        self.capture = capture
        self.counters = MeterCounters()
        self._capacity = 0
        self._slots: dict[str, np.ndarray] = {}
        self._free: list[int] = []
        # Open flows by key. Released slots are not deleted from the dict one by one (that loop cost more
        # than the rest of the meter on captures of short flows): an entry counts only while its slot is
        # in use under the same key, and the dict is rebuilt from the live slots once stale entries dominate.
        self._slot_of_key: dict[bytes, int] = {}
        self._key_of_slot = np.zeros(0, dtype=_KEY_BYTES)
        self._in_use = np.zeros(0, dtype=bool)
        self._active = 0
        self._fragment_ports: dict[tuple, tuple[int, int]] = {}
        self._packets = _Table(_PACKET_COLUMNS)
        self._packet_bytes = np.zeros(0, dtype=np.uint8)
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
        return self._emit([open_slots], [np.full(len(open_slots), "eof", dtype=object)])

    # ----- slot table ---------------------------------------------------------------------------

    def _grow(self, capacity: int) -> None:
        for name, (dtype, shape, empty) in _SLOT_FIELDS.items():
            column = np.full((capacity, *shape), empty, dtype=dtype)
            if name in self._slots:
                column[: self._capacity] = self._slots[name]
            self._slots[name] = column
        self._free.extend(range(capacity - 1, self._capacity - 1, -1))
        self._key_of_slot = np.concatenate([self._key_of_slot, np.zeros(capacity - self._capacity, _KEY_BYTES)])
        self._in_use = np.concatenate([self._in_use, np.zeros(capacity - self._capacity, bool)])
        self._capacity = capacity

    def _allocate(self, count: int) -> np.ndarray:
        while len(self._free) < count:
            self._grow(self._capacity * 2)
        taken = self._free[-count:] if count else []
        del self._free[len(self._free) - count :]
        return np.array(taken[::-1], dtype=np.int64)

    def _release(self, slots: np.ndarray) -> None:
        for name, (_, _, empty) in _SLOT_FIELDS.items():
            self._slots[name][slots] = empty
        self._close(slots)
        self._free.extend(slots.tolist())
        if len(self._slot_of_key) > 2 * self._active + 4096:
            live = np.flatnonzero(self._in_use)
            self._slot_of_key = dict(zip(self._key_of_slot[live].tolist(), live.tolist()))

    def _open_slots(self, keys: np.ndarray) -> np.ndarray:
        """The slot of the open flow of each key (``_KEY_BYTES``), -1 where none is open."""
        found = np.fromiter(map(self._slot_of_key.get, keys.tolist(), repeat(-1)), dtype=np.int64, count=len(keys))
        listed = found >= 0
        live = listed.copy()
        live[listed] = self._in_use[found[listed]] & (self._key_of_slot[found[listed]] == keys[listed])
        return np.where(live, found, -1)

    def _close(self, slots: np.ndarray) -> None:
        """The flows in ``slots`` are no longer open (their keys may open new flows)."""
        self._active -= int(self._in_use[slots].sum())
        self._in_use[slots] = False

    def _open(self, keys: np.ndarray, slots: np.ndarray) -> None:
        """Record that the flow of each key is open in its slot."""
        self._active += int((~self._in_use[slots]).sum())
        self._in_use[slots] = True
        self._key_of_slot[slots] = keys
        self._slot_of_key.update(zip(keys.tolist(), slots.tolist()))

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
        s = self._slots
        frames = batch.frames
        src = batch.src[selected]
        dst = batch.dst[selected]
        sport = sport_all[selected].astype(np.uint16)
        dport = dport_all[selected].astype(np.uint16)
        protocol = batch.protocol[selected]

        # Direction-free key: the lower (address, port) endpoint first.
        src_words = np.ascontiguousarray(src).view(">u8")
        dst_words = np.ascontiguousarray(dst).view(">u8")
        sender_is_lo = (src_words[:, 0] < dst_words[:, 0]) | (
            (src_words[:, 0] == dst_words[:, 0])
            & ((src_words[:, 1] < dst_words[:, 1]) | ((src_words[:, 1] == dst_words[:, 1]) & (sport <= dport)))
        )
        keys = np.zeros(len(selected), dtype=_KEY)
        keys["p"] = protocol
        keys["a"] = np.where(sender_is_lo[:, None], src, dst)
        keys["ap"] = np.where(sender_is_lo, sport, dport)
        keys["b"] = np.where(sender_is_lo[:, None], dst, src)
        keys["bp"] = np.where(sender_is_lo, dport, sport)
        unique_keys, group_of = _factorize(keys.view(_KEY_BYTES))
        open_slot_of_group = self._open_slots(unique_keys)

        # From here on packets are sorted by group, capture order kept inside each group.
        order = np.argsort(group_of, kind="stable")
        idx = selected[order]
        group = group_of[order]
        sender_is_lo = sender_is_lo[order]
        sport, dport, src, dst = sport[order], dport[order], src[order], dst[order]
        ts = frames.ts_ns[idx]
        flags = batch.tcp_flags[idx].astype(np.int64)
        is_tcp = batch.protocol[idx] == tcp.PROTOCOL
        length = batch.ip_len[idx].astype(np.int64)
        l3 = batch.l3_offset[idx].astype(np.int64)
        l4 = batch.l4_offset[idx].astype(np.int64)
        payload_at = batch.payload_offset[idx].astype(np.int64)
        n = len(idx)
        self._clock = int(ts.max()) if self._clock is None else max(self._clock, int(ts.max()))

        group_first = change_starts(group)
        open_slot = open_slot_of_group[group]
        continues_open = group_first & (open_slot >= 0)
        prev_ts = previous_in_segment(ts, group_first, 0)
        prev_ts[continues_open] = s["last_ns"][open_slot[continues_open]]
        has_prev = ~group_first | continues_open
        gap = np.where(has_prev, ts - prev_ts, 0)
        idle_gap = has_prev & (gap > cfg.idle_timeout * NS)

        # TCP close: after a FIN/RST, a SYN or a long pause starts a new flow. Whether a flow is closed
        # depends on earlier cuts, but only through earlier candidates, so "a FIN/RST since the previous
        # candidate (or the segment start)" decides it without a sequential scan.
        hard_start = group_first | idle_gap
        closing = is_tcp & ((flags & (tcp.FIN | tcp.RST)) != 0)
        syn_only = is_tcp & ((flags & (tcp.SYN | tcp.ACK_FLAG)) == tcp.SYN)
        candidate = has_prev & ~idle_gap & (syn_only | (gap > cfg.close_grace * NS))
        anchor = np.maximum(last_marked_before(candidate, hard_start), segment_start_positions(hard_start))
        closed_since_anchor = last_marked_before(closing, hard_start) >= anchor
        # The open flow's own FIN/RST counts until the first candidate of the segment continuing it.
        segment_head = segment_start_positions(hard_start)
        continuing_head = continues_open[segment_head] & ~idle_gap[segment_head]
        open_closed = np.zeros(n, dtype=bool)
        open_closed[continuing_head] = s["terminated"][open_slot[segment_head[continuing_head]]]
        open_closed_here = open_closed & (last_marked_before(candidate, hard_start) < 0)
        close_cut = candidate & (closed_since_anchor | open_closed_here)
        flow_start = (group_first & ~continues_open) | idle_gap | close_cut

        active_cut = self._active_cuts(ts, group_first, flow_start, continues_open, open_slot)
        flow_start |= active_cut
        continues = continues_open & ~flow_start  # first packet of a group that extends its open flow

        # Open flows whose group starts a new flow here finish.
        cut_open = continues_open & flow_start
        superseded = open_slot[cut_open]
        self._close(superseded)
        superseded_reason = _cut_reason(idle_gap[cut_open], active_cut[cut_open])

        # Segments = flows (or pieces of open flows) in this batch.
        seg_start = flow_start | continues
        seg_first = np.flatnonzero(seg_start)
        seg_of = np.cumsum(seg_start) - 1
        n_seg = len(seg_first)
        seg_continues = continues[seg_first]
        seg_slot = np.empty(n_seg, dtype=np.int64)
        seg_slot[seg_continues] = open_slot[seg_first[seg_continues]]
        new_seg = ~seg_continues
        new_slots = self._allocate(int(new_seg.sum()))
        seg_slot[new_seg] = new_slots
        slot = seg_slot[seg_of]

        # New flows: the sender of the first packet is the client, unless that packet is a SYN-ACK.
        first_new = seg_first[new_seg]
        synack = (flags[first_new] & (tcp.SYN | tcp.ACK_FLAG)) == (tcp.SYN | tcp.ACK_FLAG)
        client_is_lo = sender_is_lo[first_new] ^ (is_tcp[first_new] & synack)
        sender_is_client = sender_is_lo[first_new] == client_is_lo
        s["client_is_lo"][new_slots] = client_is_lo
        s["start_ns"][new_slots] = ts[first_new]
        s["linktype"][new_slots] = frames.linktype[idx[first_new]]
        s["ip_version"][new_slots] = batch.ip_version[idx[first_new]]
        s["protocol"][new_slots] = batch.protocol[idx[first_new]]
        s["client_addr"][new_slots] = np.where(sender_is_client[:, None], src[first_new], dst[first_new])
        s["server_addr"][new_slots] = np.where(sender_is_client[:, None], dst[first_new], src[first_new])
        s["client_port"][new_slots] = np.where(sender_is_client, sport[first_new], dport[first_new])
        s["server_port"][new_slots] = np.where(sender_is_client, dport[first_new], sport[first_new])

        direction = (sender_is_lo != s["client_is_lo"][slot]).astype(np.int8)
        payload = np.where(payload_at >= 0, np.maximum(length - (payload_at - l3), 0), 0)
        rank = s["packets"][slot].sum(axis=1) + rank_in_segment(seg_start)

        self._store_packets(frames, idx, slot, rank, direction, length, ts, prev_ts, has_prev & ~flow_start,
                            flags, l3, l4, payload_at)
        self._update_bursts(seg_start, seg_of, seg_slot, seg_continues, direction, length)
        self._update_statistics(seg_start, seg_first, seg_slot, seg_of, direction, length, payload, ts, prev_ts,
                                has_prev & ~flow_start, flags, batch.fragment[idx], closing)

        # The last segment of each group stays open under its key; earlier ones are finished.
        seg_group = group[seg_first]
        last_of_group = np.ones(n_seg, dtype=bool)
        last_of_group[:-1] = seg_group[1:] != seg_group[:-1]
        self._open(unique_keys[seg_group[last_of_group]], seg_slot[last_of_group])
        not_last = np.flatnonzero(~last_of_group)
        done_in_batch = seg_slot[not_last]
        self._close(done_in_batch)  # a continued open flow may end inside the batch
        next_first = seg_first[not_last + 1]
        done_reason = _cut_reason(idle_gap[next_first], active_cut[next_first])
        return np.concatenate([superseded, done_in_batch]), np.concatenate([superseded_reason, done_reason])

    def _active_cuts(self, ts, group_first, flow_start, continues_open, open_slot) -> np.ndarray:
        """Extra flow starts where a flow outlives the active timeout (rare: scanned group by group)."""
        limit = self.config.active_timeout * NS
        start_ts = np.where(flow_start, ts, 0)
        start_ts[continues_open & ~flow_start] = self._slots["start_ns"][open_slot[continues_open & ~flow_start]]
        marks = flow_start | (continues_open & ~flow_start)
        running_start = start_ts[np.maximum.accumulate(np.where(marks, np.arange(len(ts)), 0))]
        cuts = np.zeros(len(ts), dtype=bool)
        late = np.flatnonzero(ts - running_start > limit)
        if not len(late):
            return cuts
        group_starts = np.flatnonzero(group_first)
        for g in np.unique(np.searchsorted(group_starts, late, side="right") - 1).tolist():
            lo = group_starts[g]
            hi = group_starts[g + 1] if g + 1 < len(group_starts) else len(ts)
            current = running_start[lo]
            for i in range(lo, hi):
                if flow_start[i]:
                    current = ts[i]
                elif ts[i] - current > limit:
                    cuts[i] = True
                    current = ts[i]
        return cuts

    def _store_packets(self, frames, idx, slot, rank, direction, length, ts, prev_ts, iat_valid, flags, l3, l4,
                       payload_at) -> None:
        keep = rank < self.config.max_packets
        if not keep.any():
            return
        frame_start = frames.offset[idx[keep]] + l3[keep]
        available = frames.caplen[idx[keep]].astype(np.int64) - l3[keep]
        # stop at the IP length: Ethernet pads short frames to 60 bytes, and those zeros are not the packet's
        ip_length = length[keep].astype(np.int64)
        available = np.where(ip_length > 0, np.minimum(available, ip_length), available)
        blen = np.clip(available, 0, self.config.max_packet_bytes)
        data, offsets = gather_ranges(frames.buffer, frame_start, blen)
        base = len(self._packet_bytes)
        self._packet_bytes = np.concatenate([self._packet_bytes, data])
        self._packets.append(
            slot=slot[keep],
            rank=rank[keep],
            direction=direction[keep].astype(np.int64),
            length=length[keep],
            iat=np.where(iat_valid[keep], ts[keep] - prev_ts[keep], 0),
            flags=flags[keep],
            l4=np.where(l4[keep] >= 0, l4[keep] - l3[keep], -1),
            payload=np.where(payload_at[keep] >= 0, payload_at[keep] - l3[keep], -1),
            bstart=offsets[:-1] + base,
            blen=blen,
        )

    def _update_bursts(self, seg_start, seg_of, seg_slot, seg_continues, direction, length) -> None:
        s = self._slots
        prev_dir = previous_in_segment(direction, seg_start, -1)
        run_start = seg_start | (direction != prev_dir)
        run_first = np.flatnonzero(run_start)
        run_packets = np.diff(np.r_[run_first, len(direction)])
        run_bytes = np.add.reduceat(length, run_first)
        run_dir = direction[run_first]
        run_seg = seg_of[run_first]
        run_slot = seg_slot[run_seg]
        first_run_of_seg = seg_start[run_first]
        last_run_of_seg = np.ones(len(run_first), dtype=bool)
        last_run_of_seg[:-1] = run_seg[1:] != run_seg[:-1]

        # The first run of a continuing flow either extends its open burst or closes it.
        continuing_first = first_run_of_seg & seg_continues[run_seg]
        extends = continuing_first & (run_dir == s["burst_dir"][run_slot])
        run_packets[extends] += s["burst_packets"][run_slot[extends]]
        run_bytes[extends] += s["burst_bytes"][run_slot[extends]]
        closes_open = continuing_first & ~extends & (s["burst_dir"][run_slot] >= 0)
        closed_slots = run_slot[closes_open]
        rows_slot = [closed_slots]
        rows_rank = [s["bursts_closed"][closed_slots].astype(np.int64)]
        rows_packets = [s["burst_packets"][closed_slots].astype(np.int64)]
        rows_bytes = [s["burst_bytes"][closed_slots]]
        s["bursts_closed"][closed_slots] += 1

        finished_runs = ~last_run_of_seg
        run_rank = s["bursts_closed"][run_slot] + rank_in_segment(first_run_of_seg)
        rows_slot.append(run_slot[finished_runs])
        rows_rank.append(run_rank[finished_runs].astype(np.int64))
        rows_packets.append(run_packets[finished_runs].astype(np.int64))
        rows_bytes.append(run_bytes[finished_runs])
        self._append_bursts(rows_slot, rows_rank, rows_packets, rows_bytes)

        last = last_run_of_seg
        s["bursts_closed"][run_slot[last]] = run_rank[last]
        s["burst_dir"][run_slot[last]] = run_dir[last]
        s["burst_packets"][run_slot[last]] = run_packets[last]
        s["burst_bytes"][run_slot[last]] = run_bytes[last]

    def _append_bursts(self, slots, ranks, packets, byte_counts) -> None:
        rank = np.concatenate(ranks)
        keep = rank < self.config.max_bursts
        self._bursts.append(
            slot=np.concatenate(slots)[keep],
            rank=rank[keep],
            packets=np.concatenate(packets)[keep],
            bytes=np.concatenate(byte_counts)[keep],
        )

    def _update_statistics(self, seg_start, seg_first, seg_slot, seg_of, direction, length, payload, ts, prev_ts,
                           iat_valid, flags, fragment, closing) -> None:
        s = self._slots
        seg_last = np.r_[seg_first[1:], len(ts)] - 1
        for d in (0, 1):
            in_dir = direction == d
            s["packets"][seg_slot, d] += np.add.reduceat(in_dir.astype(np.int64), seg_first)
            s["bytes"][seg_slot, d] += np.add.reduceat(np.where(in_dir, length, 0), seg_first)
            s["payload"][seg_slot, d] += np.add.reduceat(np.where(in_dir, payload, 0), seg_first)
            _merge_moments(s, "len", (seg_slot, d), _segment_moments(length.astype(np.float64), in_dir, seg_first))
            s["fin_dir"][seg_slot, d] += np.add.reduceat((in_dir & ((flags & tcp.FIN) != 0)).astype(np.int32), seg_first)

        iat = np.where(iat_valid, (ts - prev_ts) / NS, 0.0)
        _merge_moments(s, "iat", (seg_slot,), _segment_moments(iat, iat_valid, seg_first))
        self._update_direction_iat(seg_of, seg_slot, direction, ts)

        bits = np.unpackbits(flags.astype(np.uint8)[:, None], axis=1, bitorder="little")  # column i: flag bit i
        s["flags"][seg_slot] += np.add.reduceat(bits, seg_first, axis=0, dtype=np.int32)
        s["fragments"][seg_slot] += np.add.reduceat(fragment.astype(np.int32), seg_first)
        s["terminated"][seg_slot] |= np.logical_or.reduceat(closing, seg_first)
        s["last_ns"][seg_slot] = ts[seg_last]

    def _update_direction_iat(self, seg_of, seg_slot, direction, ts) -> None:
        s = self._slots
        sub_key = seg_of * 2 + direction
        order = np.argsort(sub_key, kind="stable")
        sub_key, sub_ts = sub_key[order], ts[order]
        sub_start = change_starts(sub_key)
        sub_first = np.flatnonzero(sub_start)
        sub_slot = seg_slot[sub_key[sub_first] // 2]
        sub_dir = sub_key[sub_first] % 2
        prev = previous_in_segment(sub_ts, sub_start, -1)
        prev[sub_first] = s["dir_last_ns"][sub_slot, sub_dir]
        valid = prev >= 0
        diat = np.where(valid, (sub_ts - prev) / NS, 0.0)
        moments = _segment_moments(diat, valid, sub_first)
        for d in (0, 1):
            pick = sub_dir == d
            _merge_moments(s, "diat", (sub_slot[pick], d), {k: v[pick] for k, v in moments.items()})
        sub_last = np.r_[sub_first[1:], len(sub_ts)] - 1
        s["dir_last_ns"][sub_slot, sub_dir] = sub_ts[sub_last]

    def _expired(self) -> tuple[np.ndarray, np.ndarray]:
        s = self._slots
        open_slots = np.flatnonzero(self._in_use)
        last = s["last_ns"][open_slots]
        idle = last < self._clock - self.config.idle_timeout * NS
        closed = s["terminated"][open_slots] & (last < self._clock - self.config.close_grace * NS)
        done = idle | closed
        return open_slots[done], np.where(idle[done], "idle", "closed").astype(object)

    # ----- emission -----------------------------------------------------------------------------

    def _emit(self, finished: list[np.ndarray], reasons: list[np.ndarray]) -> pa.RecordBatch | None:
        slots = np.concatenate(finished) if finished else np.zeros(0, dtype=np.int64)
        if not len(slots):
            return None
        why = np.concatenate(reasons)
        s = self._slots
        s_ = {name: column[slots] for name, column in s.items()}
        reason = np.where(s_["flags"][:, 2] > 0, "rst", np.where(s_["flags"][:, 0] > 0, "fin", why)).astype(object)

        position = np.full(self._capacity, -1, dtype=np.int64)
        position[slots] = np.arange(len(slots))
        packets = self._packets.take(position[self._packets["slot"]] >= 0)
        packet_order = lexsort_ints((packets["rank"], position[packets["slot"]]))
        packets = {name: column[packet_order] for name, column in packets.items()}
        packet_counts = np.bincount(position[packets["slot"]], minlength=len(slots))
        bursts = self._burst_rows(slots, position)

        columns = {
            "capture": pa.array([self.capture] * len(slots), pa.string()),
            "flow_index": pa.array(np.arange(self._flow_index, self._flow_index + len(slots))),
            "linktype": s_["linktype"],
            "ip_version": s_["ip_version"],
            "protocol": s_["protocol"],
            "client_ip": format_addresses(s_["client_addr"]),
            "client_port": s_["client_port"],
            "server_ip": format_addresses(s_["server_addr"]),
            "server_port": s_["server_port"],
            "start_time": s_["start_ns"] / NS,
            "duration": (s_["last_ns"] - s_["start_ns"]) / NS,
            "end_reason": pa.array(reason.tolist(), pa.string()),
        }
        for d, prefix in ((0, "fwd"), (1, "bwd")):
            columns[f"{prefix}_packets"] = s_["packets"][:, d]
            columns[f"{prefix}_bytes"] = s_["bytes"][:, d]
            columns[f"{prefix}_payload_bytes"] = s_["payload"][:, d]
        for d, prefix in ((0, "fwd"), (1, "bwd")):
            columns.update(_moment_columns(s_, "len", f"{prefix}_len", d))
        columns.update(_moment_columns(s_, "iat", "iat"))
        for d, prefix in ((0, "fwd"), (1, "bwd")):
            columns.update(_moment_columns(s_, "diat", f"{prefix}_iat", d))
        for bit, flag in enumerate(TCP_FLAG_NAMES):
            columns[f"{flag}_count"] = s_["flags"][:, bit]
        columns["fragments"] = s_["fragments"]
        columns["n_bursts"] = (s_["bursts_closed"] + (s_["burst_dir"] >= 0)).astype(np.int32)
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
        data, byte_offsets = gather_ranges(self._packet_bytes, packets["bstart"], packets["blen"])
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
        rank = np.concatenate([stored["rank"], s["bursts_closed"][slots[has_open]]])
        packets = np.concatenate([stored["packets"], s["burst_packets"][slots[has_open]]])
        byte_counts = np.concatenate([stored["bytes"], s["burst_bytes"][slots[has_open]]])
        order = lexsort_ints((rank, position[slot]))
        return {
            "packets": packets[order],
            "bytes": byte_counts[order],
            "counts": np.bincount(position[slot], minlength=len(slots)),
        }

    def _compact_packet_bytes(self) -> None:
        """Drop bytes of emitted packets once they outweigh the live ones (amortised O(1) per byte)."""
        live = int(self._packets["blen"].sum())
        if len(self._packet_bytes) > 2 * live + (1 << 20):
            data, offsets = gather_ranges(self._packet_bytes, self._packets["bstart"], self._packets["blen"])
            self._packet_bytes = data
            self._packets.columns["bstart"] = offsets[:-1]


def _factorize(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct keys (in order of first appearance) and each key's index among them.

    Arrow's hash-based dictionary encoding, about 10x faster than sorting 37-byte keys with np.unique.
    """
    encoded = pa.Array.from_buffers(pa.binary(keys.dtype.itemsize), len(keys), [None, pa.py_buffer(keys)])
    encoded = encoded.dictionary_encode()
    distinct = encoded.dictionary
    data = np.frombuffer(distinct.buffers()[1], dtype=keys.dtype)
    return data[distinct.offset : distinct.offset + len(distinct)], encoded.indices.to_numpy().astype(np.int64)


def _cut_reason(idle: np.ndarray, active: np.ndarray) -> np.ndarray:
    """Why a flow ended when the next packet of its 5-tuple started a new one ("closed": by FIN/RST)."""
    return np.where(idle, "idle", np.where(active, "active", "closed")).astype(object)


def _segment_moments(values, valid, starts) -> dict[str, np.ndarray]:
    """Count, mean, sum of squared deviations, min and max of the valid values of each segment."""
    n = np.add.reduceat(valid.astype(np.int64), starts)
    mean = np.add.reduceat(np.where(valid, values, 0.0), starts) / np.maximum(n, 1)
    segment = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))
    deviation = np.where(valid, values - mean[segment], 0.0)
    return {
        "n": n,
        "mean": mean,
        "m2": np.add.reduceat(deviation * deviation, starts),
        "min": np.minimum.reduceat(np.where(valid, values, np.inf), starts),
        "max": np.maximum.reduceat(np.where(valid, values, -np.inf), starts),
    }


def _merge_moments(s, prefix, where, moments) -> None:
    n_a, mean_a, m2_a = s[f"{prefix}_n"][where], s[f"{prefix}_mean"][where], s[f"{prefix}_m2"][where]
    n_b, mean_b, m2_b = moments["n"], moments["mean"], moments["m2"]
    n = n_a + n_b
    safe = np.maximum(n, 1)
    delta = mean_b - mean_a
    s[f"{prefix}_mean"][where] = mean_a + delta * n_b / safe
    s[f"{prefix}_m2"][where] = m2_a + m2_b + delta * delta * n_a * n_b / safe
    s[f"{prefix}_n"][where] = n
    s[f"{prefix}_min"][where] = np.minimum(s[f"{prefix}_min"][where], moments["min"])
    s[f"{prefix}_max"][where] = np.maximum(s[f"{prefix}_max"][where], moments["max"])


def _moment_columns(s_, prefix, out_prefix, column=None) -> dict[str, np.ndarray]:
    """min/max/mean/std columns from running moments; 0 where there were no values."""
    pick = (slice(None),) if column is None else (slice(None), column)
    count = s_[f"{prefix}_n"][pick]
    empty = count == 0
    return {
        f"{out_prefix}_min": np.where(empty, 0.0, s_[f"{prefix}_min"][pick]),
        f"{out_prefix}_max": np.where(empty, 0.0, s_[f"{prefix}_max"][pick]),
        f"{out_prefix}_mean": s_[f"{prefix}_mean"][pick],
        f"{out_prefix}_std": np.sqrt(s_[f"{prefix}_m2"][pick] / np.maximum(count, 1)),
    }


def _offsets(counts: np.ndarray) -> pa.Array:
    offsets = np.zeros(len(counts) + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.array(offsets, pa.int32())
