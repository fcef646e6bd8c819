"""Flows as they looked after their first n packets: the input of early identification.

A classifier deployed on a link must decide before a flow ends. ``first_packets(flows, n)`` cuts every
per-packet column to n packets and recomputes everything derived from packets (totals, size and timing
statistics, flag counts, bursts, duration) from those n alone, so no model can peek at the rest of the
flow. Totals are network-layer bytes as in the flow meter; the end reason becomes "partial".
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etbert.flows.schema import CLIENT_TO_SERVER, TCP_FLAG_NAMES

PACKET_COLUMNS = ("pkt_direction", "pkt_length", "pkt_iat", "pkt_tcp_flags", "pkt_bytes", "pkt_l4_offset",
                  "pkt_payload_offset")
# what the recomputation reads: a reader of the flow table adds these to the columns it needs
SOURCE_COLUMNS = ("pkt_direction", "pkt_length", "pkt_iat", "pkt_tcp_flags", "pkt_payload_offset")
PARTIAL = "partial"


def first_packets(flows: pa.Table, n: int) -> pa.Table:
    """The flow table recomputed from each flow's first ``n`` packets (the stored ones: at most K)."""
    if n < 1:
        raise ValueError(f"packets must be at least 1, not {n}")
    flows = flows.combine_chunks()
    columns = {name: flows.column(name) for name in flows.column_names}
    for name in PACKET_COLUMNS:
        if name in columns:
            columns[name] = pc.list_slice(columns[name], 0, n)
    missing = [name for name in SOURCE_COLUMNS if name not in columns]
    if missing:
        raise ValueError(f"first_packets needs the columns {', '.join(missing)}")
    derived = _derived_columns(columns)
    for name, values in derived.items():
        if name in columns:
            columns[name] = pa.array(values, type=flows.schema.field(name).type)
    return pa.table(columns, schema=flows.schema)


def _derived_columns(columns: dict) -> dict:
    directions = columns["pkt_direction"].combine_chunks()
    counts = pc.list_value_length(directions).to_numpy(zero_copy_only=False).astype(np.int64)
    flows = len(counts)
    owner = np.repeat(np.arange(flows), counts)
    direction = pc.list_flatten(directions).to_numpy(zero_copy_only=False)
    length = _flat(columns, "pkt_length", np.int64)
    iat = _flat(columns, "pkt_iat", np.float64)
    flags = _flat(columns, "pkt_tcp_flags", np.int64)
    payload_offset = _flat(columns, "pkt_payload_offset", np.int64)
    forward = direction == CLIENT_TO_SERVER
    first = np.zeros(len(direction), dtype=bool)
    first[np.cumsum(counts)[:-1][counts[:-1] > 0] if flows else []] = True
    if len(direction):
        first[0] = True
    out: dict[str, np.ndarray] = {}
    out["fwd_packets"] = np.bincount(owner, forward, flows).astype(np.int64)
    out["bwd_packets"] = counts - out["fwd_packets"]
    out["fwd_bytes"] = np.bincount(owner, length * forward, flows).astype(np.int64)
    out["bwd_bytes"] = np.bincount(owner, length * ~forward, flows).astype(np.int64)
    payload = np.where(payload_offset >= 0, np.maximum(length - payload_offset, 0), 0)
    out["fwd_payload_bytes"] = np.bincount(owner, payload * forward, flows).astype(np.int64)
    out["bwd_payload_bytes"] = np.bincount(owner, payload * ~forward, flows).astype(np.int64)
    out["duration"] = np.bincount(owner, np.where(first, 0.0, iat), flows)
    out.update(_stats("fwd_len", owner, length, forward, flows))
    out.update(_stats("bwd_len", owner, length, ~forward, flows))
    out.update(_stats("iat", owner, iat, ~first, flows))
    time = np.cumsum(np.where(first, 0.0, iat))  # only differences within a flow matter
    for prefix, mask in (("fwd_iat", forward), ("bwd_iat", ~forward)):
        index = np.flatnonzero(mask)
        same_flow = owner[index][1:] == owner[index][:-1]
        gaps = np.diff(time[index])[same_flow]
        out.update(_stats(prefix, owner[index][1:][same_flow], gaps, np.ones(len(gaps), bool), flows))
    for bit, name in enumerate(TCP_FLAG_NAMES):
        out[f"{name}_count"] = np.bincount(owner, (flags >> bit) & 1, flows).astype(np.int32)
    new_burst = first | np.r_[True, direction[1:] != direction[:-1]] if len(direction) else first
    burst_owner = owner[new_burst]
    burst_id = np.cumsum(new_burst) - 1
    burst_packets = np.bincount(burst_id, minlength=int(new_burst.sum()))
    burst_bytes = np.bincount(burst_id, length, int(new_burst.sum())).astype(np.int64)
    out["n_bursts"] = np.bincount(burst_owner, minlength=flows).astype(np.int32)
    offsets = np.r_[0, np.cumsum(out["n_bursts"])]
    out["burst_packets"] = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(burst_packets, pa.int32()))
    out["burst_bytes"] = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(burst_bytes, pa.int64()))
    out["end_reason"] = np.full(flows, PARTIAL, dtype=object)
    return out


def _flat(columns: dict, name: str, dtype) -> np.ndarray:
    return pc.list_flatten(columns[name].combine_chunks()).to_numpy(zero_copy_only=False).astype(dtype)


def _stats(prefix: str, owner: np.ndarray, values: np.ndarray, mask: np.ndarray, flows: int) -> dict:
    """min/max/mean/population std per flow over the masked values; 0 where a flow has none (as the meter)."""
    owner, values = owner[mask], values[mask].astype(np.float64)
    count = np.bincount(owner, minlength=flows)
    total = np.bincount(owner, values, flows)
    mean = np.divide(total, count, out=np.zeros(flows), where=count > 0)
    squares = np.bincount(owner, (values - mean[owner]) ** 2, flows)
    std = np.sqrt(np.divide(squares, count, out=np.zeros(flows), where=count > 0))
    low = np.full(flows, np.inf)
    high = np.full(flows, -np.inf)
    np.minimum.at(low, owner, values)
    np.maximum.at(high, owner, values)
    none = count == 0
    low[none] = 0.0
    high[none] = 0.0
    return {f"{prefix}_min": low, f"{prefix}_max": high, f"{prefix}_mean": mean, f"{prefix}_std": std}
