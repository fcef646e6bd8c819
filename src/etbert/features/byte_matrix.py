"""The first M bytes of a flow's first N packets as an N x M matrix of byte tokens.

Row i holds packet i's bytes in time order (from the IP header on, or from the transport payload with
``payload_only``); positions past a packet's end, and rows of packets the flow does not have, hold
``PAD``, a token outside the byte values 0..255. The bytes are those the dataset stored, so already
anonymised by its policy.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PAD = 256
VOCABULARY = 257  # byte values and the padding token


def byte_matrix(flows: pa.Table, packets: int = 6, bytes_per_packet: int = 128,
                payload_only: bool = False) -> np.ndarray:
    """int16 array (flows, packets, bytes_per_packet) of byte values, ``PAD`` where there is none."""
    if packets < 1 or bytes_per_packet < 1:
        raise ValueError(f"packets and bytes_per_packet must be at least 1, not {packets} and {bytes_per_packet}")
    lists = pc.list_slice(flows.column("pkt_bytes").combine_chunks(), 0, packets)
    counts = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    data = pc.list_flatten(lists).cast(pa.large_binary())
    if data.null_count:
        data = data.fill_null(b"")
    matrix = np.full((len(counts) * packets, bytes_per_packet), PAD, dtype=np.int16)
    if len(data) == 0:
        return matrix.reshape(len(counts), packets, bytes_per_packet)
    offsets = np.frombuffer(data.buffers()[1], dtype=np.int64)[data.offset:data.offset + len(data) + 1]
    content = np.frombuffer(data.buffers()[2], dtype=np.uint8)
    start, end = offsets[:-1], offsets[1:]
    if payload_only:
        payload = pc.list_flatten(pc.list_slice(flows.column("pkt_payload_offset").combine_chunks(), 0, packets))
        payload = payload.to_numpy(zero_copy_only=False).astype(np.int64)
        # no payload (-1): nothing to show, so the row stays padding
        start = np.where(payload >= 0, np.minimum(start + payload, end), end)
    length = np.minimum(end - start, bytes_per_packet)
    position = np.arange(bytes_per_packet)
    present = position < length[:, None]
    rows = np.full((len(length), bytes_per_packet), PAD, dtype=np.int16)
    rows[present] = content[(start[:, None] + position)[present]]
    # packet j of flow f goes to row f * packets + j
    flow_of = np.repeat(np.arange(len(counts)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    slot = flow_of * packets + np.arange(len(flow_of)) - first
    matrix[slot] = rows
    return matrix.reshape(len(counts), packets, bytes_per_packet)
