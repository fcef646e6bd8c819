"""Flow statistics and the first-K packet sequence: the classic learners' view of a flow.

Both are pure functions of a flow table (rows of the dataset) returning a float matrix, one row per flow,
and the name of each column. Nothing here reads addresses, ports or packet bytes.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etbert.flows.schema import CLIENT_TO_SERVER, TCP_FLAG_NAMES

ABSENT = -1.0  # a packet the flow does not have (shorter than K), or a field the packet does not carry

_TOTALS = ("duration", "fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes", "fwd_payload_bytes",
           "bwd_payload_bytes")
_STATISTICS = tuple(f"{prefix}_{stat}" for prefix in ("fwd_len", "bwd_len", "iat", "fwd_iat", "bwd_iat")
                    for stat in ("min", "max", "mean", "std"))
_COUNTS = (*(f"{flag}_count" for flag in TCP_FLAG_NAMES), "fragments", "n_bursts")
_BURSTS = ("burst_packets", "burst_bytes")

STATISTICS_COLUMNS = (*_TOTALS, *_STATISTICS, *_COUNTS, *_BURSTS)
SEQUENCE_COLUMNS = ("pkt_length", "pkt_direction", "pkt_iat")


def flow_statistics(flows: pa.Table) -> tuple[np.ndarray, list[str]]:
    """Totals, size and inter-arrival statistics per direction, flag counts, burst statistics and rates."""
    columns = [_numbers(flows.column(name)) for name in (*_TOTALS, *_STATISTICS, *_COUNTS)]
    names = [*_TOTALS, *_STATISTICS, *_COUNTS]
    for name in _BURSTS:  # the stored bursts (the first max_bursts of the flow)
        for stat, values in _list_statistics(flows.column(name)).items():
            columns.append(values)
            names.append(f"{name}_{stat}")
    duration = _numbers(flows.column("duration"))
    packets = _numbers(flows.column("fwd_packets")) + _numbers(flows.column("bwd_packets"))
    fwd_bytes, bwd_bytes = _numbers(flows.column("fwd_bytes")), _numbers(flows.column("bwd_bytes"))
    derived = {
        "packets": packets,
        "bytes": fwd_bytes + bwd_bytes,
        "packets_per_second": _ratio(packets, duration),
        "bytes_per_second": _ratio(fwd_bytes + bwd_bytes, duration),
        "bwd_fwd_bytes_ratio": _ratio(bwd_bytes, fwd_bytes),
    }
    columns += derived.values()
    names += derived
    return np.column_stack(columns), names


def packet_sequence(flows: pa.Table, packets: int) -> tuple[np.ndarray, list[str]]:
    """Size, direction (+1 client to server, -1 back) and inter-arrival time of the first ``packets`` packets.

    Columns are packet-major (``p0_length, p0_direction, p0_iat, p1_length, ...``); a flow with fewer
    packets has ABSENT in the missing ones' columns.
    """
    direction = per_packet_matrix(flows.column("pkt_direction"), packets)
    fields = {
        "length": per_packet_matrix(flows.column("pkt_length"), packets),
        "direction": np.where(direction == ABSENT, ABSENT, np.where(direction == CLIENT_TO_SERVER, 1.0, -1.0)),
        "iat": per_packet_matrix(flows.column("pkt_iat"), packets),
    }
    return packet_major(fields, packets)


def per_packet_matrix(lists: pa.ChunkedArray | pa.Array, packets: int) -> np.ndarray:
    """(flows, packets) float matrix of the first ``packets`` values of each list; ABSENT past a list's end."""
    lists = pc.list_slice(_combined(lists), 0, packets)
    counts = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.float64)
    matrix = np.full((len(counts), packets), ABSENT)
    matrix[np.repeat(np.arange(len(counts)), counts), rank_in_lists(counts)] = values
    return matrix


def packet_major(fields: dict[str, np.ndarray], packets: int) -> tuple[np.ndarray, list[str]]:
    """Per-packet (flows, packets) matrices of each field as one matrix: all fields of packet 0, then 1..."""
    matrix = np.stack(list(fields.values()), axis=2).reshape(-1, packets * len(fields))
    names = [f"p{packet}_{field}" for packet in range(packets) for field in fields]
    return matrix, names


def rank_in_lists(counts: np.ndarray) -> np.ndarray:
    """0..count-1 for each list length, concatenated: each flattened value's position in its list."""
    firsts = np.cumsum(counts) - counts
    return np.arange(int(counts.sum())) - np.repeat(firsts, counts)


def _list_statistics(lists: pa.ChunkedArray) -> dict[str, np.ndarray]:
    """min/max/mean/population std of each list; 0 for an empty list."""
    lists = _combined(lists)
    counts = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(lists).to_numpy(zero_copy_only=False).astype(np.float64)
    flows = len(counts)
    owner = np.repeat(np.arange(flows), counts)
    mean = np.divide(np.bincount(owner, values, flows), counts, out=np.zeros(flows), where=counts > 0)
    std = np.sqrt(np.divide(np.bincount(owner, (values - mean[owner]) ** 2, flows), counts, out=np.zeros(flows),
                            where=counts > 0))
    low, high = np.full(flows, np.inf), np.full(flows, -np.inf)
    np.minimum.at(low, owner, values)
    np.maximum.at(high, owner, values)
    low[counts == 0] = 0.0
    high[counts == 0] = 0.0
    return {"min": low, "max": high, "mean": mean, "std": std}


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    return column.to_numpy().astype(np.float64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.zeros(len(numerator)), where=denominator > 0)


def _combined(values: pa.ChunkedArray | pa.Array) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
