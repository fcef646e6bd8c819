"""The flow meter's per-packet loop, compiled by numba.

Whether a packet starts a new flow depends on the flow's state after the previous packet (its last
time, whether it saw a FIN or RST, when it started), so the rules read best as a loop over packets in
capture order. In NumPy the same rules took about a hundred array passes per batch; compiled, the loop
runs several times faster and says what it does. The meter (`etbert.flows.meter`) keeps everything
else: grouping packets by 5-tuple, the key table, expiry and building the flow records.

The slot table is one NumPy structured array, a record per slot (`etbert.flows.meter._SLOT_DTYPE`), so
that a packet's update touches a few adjacent cache lines rather than one line in each of forty arrays
(that layout made the loop three times slower); the loop updates it in place.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from etbert.compiled import compiled
from etbert.flows.schema import END_REASONS

# Why a flow ended when a later packet of its 5-tuple started a new one, as indices into END_REASONS. A
# closed flow saw a FIN or RST, and its record names which.
CUT_IDLE, CUT_ACTIVE, CUT_CLOSED = END_REASONS.index("idle"), END_REASONS.index("active"), END_REASONS.index("fin")

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
TCP = 6


class PacketColumns(NamedTuple):
    """The usable packets of a batch in capture order, one entry each."""

    group: np.ndarray  # int64: index of the packet's direction-free 5-tuple in the batch
    ts: np.ndarray  # int64 ns
    sender_is_lo: np.ndarray  # bool: the sender is the key's lower endpoint
    flags: np.ndarray  # uint8 TCP flags (0 for UDP)
    protocol: np.ndarray  # uint8
    length: np.ndarray  # int64: IP length
    payload: np.ndarray  # int64: transport payload bytes
    fragment: np.ndarray  # bool
    linktype: np.ndarray  # int32
    ip_version: np.ndarray  # uint8
    src: np.ndarray  # (n, 16) uint8
    dst: np.ndarray  # (n, 16) uint8
    sport: np.ndarray  # uint16
    dport: np.ndarray  # uint16


class LoopOutput(NamedTuple):
    """What one call found, in the first ``counts[i]`` rows of each part."""

    counts: np.ndarray  # (stored packets, closed bursts, cut flows, slots taken from ``free``)
    stored_packet: np.ndarray  # index of a packet kept with its bytes (rank below max_packets)
    stored_slot: np.ndarray
    stored_rank: np.ndarray
    stored_direction: np.ndarray
    stored_iat: np.ndarray  # ns, 0 for a flow's first packet
    burst_slot: np.ndarray
    burst_rank: np.ndarray
    burst_packets: np.ndarray
    burst_bytes: np.ndarray
    cut_slot: np.ndarray
    cut_reason: np.ndarray


def meter_packets(packets: PacketColumns, first_number: int, group_slot: np.ndarray, free: np.ndarray,
                  table: np.ndarray, idle_ns: int, active_ns: int, grace_ns: int, max_packets: int,
                  max_bursts: int) -> LoopOutput:
    """Run the packets through their flows, in capture order.

    ``first_number``: the number of the batch's first packet in the capture. ``group_slot[g]``: the slot
    of group g's open flow, -1 if none; updated in place to the slot open after the batch.
    New flows take slots from the end of ``free`` (it must hold one per packet).
    """
    n = len(packets.ts)
    out = LoopOutput(np.zeros(4, np.int64), *(np.empty(n, np.int64) for _ in range(5)),
                     *(np.empty(n, np.int64) for _ in range(4)), np.empty(n, np.int64), np.empty(n, np.int64))
    _loop(packets, first_number, group_slot, free, table, idle_ns, active_ns, grace_ns, max_packets, max_bursts, out)
    return out


@compiled
def _welford(n, mean, m2, low, high, row, x):
    """Add x to the running moments (count, mean, sum of squared deviations, min, max) at ``row``."""
    n[row] += 1
    delta = x - mean[row]
    mean[row] += delta / n[row]
    m2[row] += delta * (x - mean[row])
    low[row] = min(low[row], x)
    high[row] = max(high[row], x)


@compiled
def _loop(p, first_number, group_slot, free, table, idle_ns, active_ns, grace_ns, max_packets, max_bursts, out):
    stored = bursts = cuts = taken = 0
    for i in range(len(p.ts)):
        g = p.group[i]
        ts = p.ts[i]
        flags = p.flags[i]
        is_tcp = p.protocol[i] == TCP
        slot = group_slot[g]

        # Does this packet continue the open flow of its 5-tuple?
        if slot >= 0:
            s = table[slot]
            gap = ts - s.last_ns
            syn_only = is_tcp and (flags & (SYN | ACK)) == SYN
            reason = -1
            if gap > idle_ns:
                reason = CUT_IDLE
            elif s.terminated and (syn_only or gap > grace_ns):
                reason = CUT_CLOSED
            elif ts - s.start_ns > active_ns:
                reason = CUT_ACTIVE
            if reason >= 0:
                out.cut_slot[cuts] = slot
                out.cut_reason[cuts] = reason
                cuts += 1
                slot = -1

        continues = slot >= 0
        if not continues:  # a new flow: the sender is the client, unless this is a SYN-ACK
            taken += 1
            slot = free[len(free) - taken]
            group_slot[g] = slot
            s = table[slot]
            synack = is_tcp and (flags & (SYN | ACK)) == (SYN | ACK)
            client_is_lo = p.sender_is_lo[i] != synack
            sender_is_client = p.sender_is_lo[i] == client_is_lo
            s.client_is_lo = client_is_lo
            s.opened_by = first_number + i
            s.start_ns = ts
            s.linktype = p.linktype[i]
            s.ip_version = p.ip_version[i]
            s.protocol = p.protocol[i]
            for j in range(16):
                s.client_addr[j] = p.src[i, j] if sender_is_client else p.dst[i, j]
                s.server_addr[j] = p.dst[i, j] if sender_is_client else p.src[i, j]
            s.client_port = p.sport[i] if sender_is_client else p.dport[i]
            s.server_port = p.dport[i] if sender_is_client else p.sport[i]

        d = 0 if p.sender_is_lo[i] == s.client_is_lo else 1
        length = p.length[i]
        rank = s.packets[0] + s.packets[1]
        if rank < max_packets:
            out.stored_packet[stored] = i
            out.stored_slot[stored] = slot
            out.stored_rank[stored] = rank
            out.stored_direction[stored] = d
            out.stored_iat[stored] = ts - s.last_ns if continues else 0
            stored += 1

        # Bursts: maximal runs of same-direction packets.
        if s.burst_dir == d:
            s.burst_packets += 1
            s.burst_bytes += length
        else:
            if s.burst_dir >= 0:
                if s.bursts_closed < max_bursts:
                    out.burst_slot[bursts] = slot
                    out.burst_rank[bursts] = s.bursts_closed
                    out.burst_packets[bursts] = s.burst_packets
                    out.burst_bytes[bursts] = s.burst_bytes
                    bursts += 1
                s.bursts_closed += 1
            s.burst_dir = d
            s.burst_packets = 1
            s.burst_bytes = length

        s.packets[d] += 1
        s.bytes[d] += length
        s.payload[d] += p.payload[i]
        _welford(s.len_n, s.len_mean, s.len_m2, s.len_min, s.len_max, d, float(length))
        if continues:  # inter-arrival time within the flow (scalar fields: updated here, not by _welford)
            iat = (ts - s.last_ns) / 1e9
            s.iat_n += 1
            delta = iat - s.iat_mean
            s.iat_mean += delta / s.iat_n
            s.iat_m2 += delta * (iat - s.iat_mean)
            s.iat_min = min(s.iat_min, iat)
            s.iat_max = max(s.iat_max, iat)
        if s.dir_last_ns[d] >= 0:
            _welford(s.diat_n, s.diat_mean, s.diat_m2, s.diat_min, s.diat_max, d, (ts - s.dir_last_ns[d]) / 1e9)
        s.dir_last_ns[d] = ts
        for bit in range(8):
            s.flags[bit] += (flags >> bit) & 1
        if flags & FIN:
            s.fin_dir[d] += 1
        if p.fragment[i]:
            s.fragments += 1
        if is_tcp and flags & (FIN | RST):
            s.terminated = True
        s.last_ns = ts

    out.counts[0], out.counts[1], out.counts[2], out.counts[3] = stored, bursts, cuts, taken
