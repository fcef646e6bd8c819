"""The flow meter's records, compiled by numba (`etbert.compiled`): finished flows read out of the slot table
into the columns of the flow table (`etbert.flows.schema`), and their slots emptied for reuse.

One pass over the finished slots writes every column; gathering the slot records first and cutting
columns out of them with NumPy took several times as long on captures of one- and two-packet flows, where
records are built as often as packets are read.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from etbert.compiled import compiled, compiled_inline
from etbert.flows.schema import END_REASONS, FLOW_SCHEMA

NS = 1e9
END_FIN, END_RST = END_REASONS.index("fin"), END_REASONS.index("rst")


class FlowColumns(NamedTuple):
    """One entry per finished flow: the flow table's columns that come from the flow's slot, plus the
    endpoints' 16-byte addresses and why the flow ended (an index into `END_REASONS`)."""

    linktype: np.ndarray
    ip_version: np.ndarray
    protocol: np.ndarray
    client_port: np.ndarray
    server_port: np.ndarray
    start_time: np.ndarray
    duration: np.ndarray
    fwd_packets: np.ndarray
    bwd_packets: np.ndarray
    fwd_bytes: np.ndarray
    bwd_bytes: np.ndarray
    fwd_payload_bytes: np.ndarray
    bwd_payload_bytes: np.ndarray
    fwd_len_min: np.ndarray
    fwd_len_max: np.ndarray
    fwd_len_mean: np.ndarray
    fwd_len_std: np.ndarray
    bwd_len_min: np.ndarray
    bwd_len_max: np.ndarray
    bwd_len_mean: np.ndarray
    bwd_len_std: np.ndarray
    iat_min: np.ndarray
    iat_max: np.ndarray
    iat_mean: np.ndarray
    iat_std: np.ndarray
    fwd_iat_min: np.ndarray
    fwd_iat_max: np.ndarray
    fwd_iat_mean: np.ndarray
    fwd_iat_std: np.ndarray
    bwd_iat_min: np.ndarray
    bwd_iat_max: np.ndarray
    bwd_iat_mean: np.ndarray
    bwd_iat_std: np.ndarray
    fin_count: np.ndarray
    syn_count: np.ndarray
    rst_count: np.ndarray
    psh_count: np.ndarray
    ack_count: np.ndarray
    urg_count: np.ndarray
    ece_count: np.ndarray
    cwr_count: np.ndarray
    fragments: np.ndarray
    n_bursts: np.ndarray
    client_addr: np.ndarray  # (n, 16) uint8
    server_addr: np.ndarray  # (n, 16) uint8
    end_code: np.ndarray  # int64


SCHEMA_COLUMNS = FlowColumns._fields[:-3]  # those with the flow table's name and type


_DTYPES = {name: np.dtype(FLOW_SCHEMA.field(name).type.to_pandas_dtype()) for name in SCHEMA_COLUMNS}


def empty_columns(count: int) -> FlowColumns:
    arrays = {name: np.empty(count, dtype=dtype) for name, dtype in _DTYPES.items()}
    return FlowColumns(**arrays, client_addr=np.empty((count, 16), dtype=np.uint8),
                       server_addr=np.empty((count, 16), dtype=np.uint8), end_code=np.empty(count, dtype=np.int64))


@compiled
def take_records(table, table_bytes, empty_slot, slots, why, out):
    """Write the records of ``slots`` (ended for the reason codes ``why``, unless a FIN or RST says more)
    into ``out``, then reset each slot to ``empty_slot`` (``table_bytes``: the table as rows of bytes)."""
    for i in range(len(slots)):
        s = table[slots[i]]
        out.linktype[i] = s.linktype
        out.ip_version[i] = s.ip_version
        out.protocol[i] = s.protocol
        out.client_port[i] = s.client_port
        out.server_port[i] = s.server_port
        for j in range(16):
            out.client_addr[i, j] = s.client_addr[j]
            out.server_addr[i, j] = s.server_addr[j]
        out.start_time[i] = s.start_ns / NS
        out.duration[i] = (s.last_ns - s.start_ns) / NS
        out.fwd_packets[i], out.bwd_packets[i] = s.packets[0], s.packets[1]
        out.fwd_bytes[i], out.bwd_bytes[i] = s.bytes[0], s.bytes[1]
        out.fwd_payload_bytes[i], out.bwd_payload_bytes[i] = s.payload[0], s.payload[1]
        _statistics(s.len_n[0], s.len_mean[0], s.len_m2[0], s.len_min[0], s.len_max[0], i, out.fwd_len_min,
                    out.fwd_len_max, out.fwd_len_mean, out.fwd_len_std)
        _statistics(s.len_n[1], s.len_mean[1], s.len_m2[1], s.len_min[1], s.len_max[1], i, out.bwd_len_min,
                    out.bwd_len_max, out.bwd_len_mean, out.bwd_len_std)
        _statistics(s.iat_n, s.iat_mean, s.iat_m2, s.iat_min, s.iat_max, i, out.iat_min, out.iat_max, out.iat_mean,
                    out.iat_std)
        _statistics(s.diat_n[0], s.diat_mean[0], s.diat_m2[0], s.diat_min[0], s.diat_max[0], i, out.fwd_iat_min,
                    out.fwd_iat_max, out.fwd_iat_mean, out.fwd_iat_std)
        _statistics(s.diat_n[1], s.diat_mean[1], s.diat_m2[1], s.diat_min[1], s.diat_max[1], i, out.bwd_iat_min,
                    out.bwd_iat_max, out.bwd_iat_mean, out.bwd_iat_std)
        out.fin_count[i], out.syn_count[i], out.rst_count[i], out.psh_count[i] = (s.flags[0], s.flags[1], s.flags[2],
                                                                                   s.flags[3])
        out.ack_count[i], out.urg_count[i], out.ece_count[i], out.cwr_count[i] = (s.flags[4], s.flags[5], s.flags[6],
                                                                                   s.flags[7])
        out.fragments[i] = s.fragments
        out.n_bursts[i] = s.bursts_closed + (1 if s.burst_dir >= 0 else 0)
        out.end_code[i] = END_RST if s.flags[2] > 0 else END_FIN if s.flags[0] > 0 else why[i]
        row = table_bytes[slots[i]]
        for j in range(np.uint64(len(empty_slot))):  # unsigned: numba then skips its negative-index check
            row[j] = empty_slot[j]


@compiled_inline
def _statistics(count, mean, m2, low, high, i, out_min, out_max, out_mean, out_std):
    """min/max/mean/std from running moments; 0 where there were no values."""
    out_min[i] = low if count else 0.0
    out_max[i] = high if count else 0.0
    out_mean[i] = mean
    out_std[i] = np.sqrt(m2 / max(count, 1))
