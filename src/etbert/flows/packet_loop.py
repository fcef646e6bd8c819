"""The flow meter's per-packet loop, compiled by numba.

Whether a packet starts a new flow depends on the flow's state after the previous packet (its last
time, whether it saw a FIN or RST, when it started), so the rules read best as a loop over packets in
capture order. In NumPy the same rules took about a hundred array passes per batch; compiled, the loop
runs several times faster and says what it does. Each packet finds its open flow in the key table
(`etbert.flows.key_table`); the meter (`etbert.flows.meter`) keeps everything else: the usable packets,
expiry between batches and building the flow records.

The slot table is one NumPy structured array, a record per slot (`etbert.flows.meter._SLOT_DTYPE`), so
that a packet's update touches a few adjacent cache lines rather than one line in each of forty arrays
(that layout made the loop three times slower); the loop updates it in place.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from etbert.compiled import compiled
from etbert.flows.key_table import find, key_hash, packed_ports
from etbert.flows.schema import END_REASONS

# Why a flow ended when a later packet of its 5-tuple started a new one, as indices into END_REASONS. A
# closed flow saw a FIN or RST, and its record names which.
CUT_IDLE, CUT_ACTIVE, CUT_CLOSED = END_REASONS.index("idle"), END_REASONS.index("active"), END_REASONS.index("fin")

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
TCP = 6


class PacketColumns(NamedTuple):
    """The usable packets of a batch in capture order, one entry each."""

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
    src_words: np.ndarray  # (n, 2) uint64: the same addresses as words, for the key table
    dst_words: np.ndarray
    sport: np.ndarray  # uint16
    dport: np.ndarray  # uint16


class FlowTable(NamedTuple):
    """The meter's open flows, updated in place: the slot records, which slots hold an open flow, the key
    table (`etbert.flows.key_table`) and its seed, and a stack of free slots (``free[:free_count]``, the
    count in the loop's output)."""

    slots: np.ndarray
    in_use: np.ndarray  # bool per slot
    index: np.ndarray
    seed: np.uint64
    free: np.ndarray


# Entries of LoopOutput.counts
STORED, BURSTS, CUTS, FREE, NEXT, OPENED = range(6)


class LoopOutput(NamedTuple):
    """What the loop found, in the first ``counts[STORED]``, ``counts[BURSTS]`` and ``counts[CUTS]`` rows
    of each part. ``counts[FREE]``: slots left on the free stack; ``counts[NEXT]``: the first packet not yet
    run (the loop stops early when the free stack runs out); ``counts[OPENED]``: flows opened."""

    counts: np.ndarray
    stored_packet: np.ndarray  # index of a packet kept with its bytes (rank below max_packets)
    stored_slot: np.ndarray
    stored_direction: np.ndarray
    stored_iat: np.ndarray  # ns, 0 for a flow's first packet
    burst_slot: np.ndarray
    burst_packets: np.ndarray
    burst_bytes: np.ndarray
    cut_slot: np.ndarray
    cut_reason: np.ndarray


def loop_output(packets: int, free_count: int) -> LoopOutput:
    counts = np.zeros(6, np.int64)
    counts[FREE] = free_count
    return LoopOutput(counts, *(np.empty(packets, np.int64) for _ in range(9)))


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
def meter_packets(p, first_number, flows, idle_ns, active_ns, grace_ns, max_packets, max_bursts, out):
    """Run the packets (`PacketColumns`) from ``out.counts[NEXT]`` on through their flows (`FlowTable`), in
    capture order, until the end or until a new flow finds the free stack empty; the caller then adds
    slots and calls again. ``first_number``: the number of the batch's first packet in the capture."""
    table, index = flows.slots, flows.index
    stored, bursts, cuts = out.counts[STORED], out.counts[BURSTS], out.counts[CUTS]
    free_count, opened = out.counts[FREE], out.counts[OPENED]
    i = out.counts[NEXT]
    while i < len(p.ts) and free_count > 0:
        ts = p.ts[i]
        flags = p.flags[i]
        is_tcp = p.protocol[i] == TCP
        if p.sender_is_lo[i]:
            k0, k1, k2, k3 = p.src_words[i, 0], p.src_words[i, 1], p.dst_words[i, 0], p.dst_words[i, 1]
            k4 = packed_ports(p.protocol[i], p.sport[i], p.dport[i])
        else:
            k0, k1, k2, k3 = p.dst_words[i, 0], p.dst_words[i, 1], p.src_words[i, 0], p.src_words[i, 1]
            k4 = packed_ports(p.protocol[i], p.dport[i], p.sport[i])
        h = key_hash(flows.seed, k0, k1, k2, k3, k4)
        at = find(index, table, h, k0, k1, k2, k3, k4)
        slot = index[at]

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
                flows.in_use[slot] = False
                slot = -1

        continues = slot >= 0
        if not continues:  # a new flow: the sender is the client, unless this is a SYN-ACK
            free_count -= 1
            slot = flows.free[free_count]
            opened += 1
            index[at] = slot
            flows.in_use[slot] = True
            s = table[slot]
            s.key_hash = h
            s.key[0], s.key[1], s.key[2], s.key[3], s.key[4] = k0, k1, k2, k3, k4
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
        i += 1

    out.counts[STORED], out.counts[BURSTS], out.counts[CUTS] = stored, bursts, cuts
    out.counts[FREE], out.counts[NEXT], out.counts[OPENED] = free_count, i, opened
