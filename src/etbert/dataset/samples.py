"""Packet-level samples drawn from a prepared flow table (ET-BERT's packet-level task).

Every packet inherits its flow's label and split, so a flow's packets never straddle splits. Exact
duplicates (identical once identity fields are masked) are removed across the whole dataset, keeping
the copy in the earliest split (train, then val, then test): a test packet never repeats a training one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from etbert.dataset.anonymize import mask_identity
from etbert.dataset.split import SPLITS

PACKET_SCHEMA = pa.schema(
    [
        pa.field("flow_id", pa.string()),
        pa.field("packet_index", pa.int16()),  # position in the flow
        pa.field("label", pa.string()),
        pa.field("split", pa.string()),
        pa.field("direction", pa.int8()),
        pa.field("length", pa.int32()),
        pa.field("bytes", pa.binary()),
        pa.field("l4_offset", pa.int16()),
        pa.field("payload_offset", pa.int16()),
    ]
)


@dataclass
class PacketSampleReport:
    packets: int
    duplicates: int
    kept: int


def packet_samples(flows: pa.Table, packets_per_flow: int | None = None) -> tuple[pa.Table, PacketSampleReport]:
    """One row per stored packet (the first ``packets_per_flow`` of each flow), deduplicated across splits."""
    split_rank = {name: i for i, name in enumerate(SPLITS)}
    order = np.argsort([split_rank.get(s, len(SPLITS)) for s in flows.column("split").to_pylist()], kind="stable")
    flows = flows.take(pa.array(order))
    columns = {name: flows.column(name).to_pylist() for name in
               ("flow_id", "label", "split", "pkt_direction", "pkt_length", "pkt_bytes", "pkt_l4_offset",
                "pkt_payload_offset")}
    rows = {field.name: [] for field in PACKET_SCHEMA}
    seen: set[bytes] = set()
    total = duplicates = 0
    for i, packets in enumerate(columns["pkt_bytes"]):
        take = len(packets) if packets_per_flow is None else min(len(packets), packets_per_flow)
        masked = mask_identity(packets[:take], columns["pkt_l4_offset"][i][:take])
        for j in range(take):
            total += 1
            key = hashlib.blake2b(masked[j], digest_size=16).digest()
            if key in seen:
                duplicates += 1
                continue
            seen.add(key)
            rows["flow_id"].append(columns["flow_id"][i])
            rows["packet_index"].append(j)
            rows["label"].append(columns["label"][i])
            rows["split"].append(columns["split"][i])
            rows["direction"].append(columns["pkt_direction"][i][j])
            rows["length"].append(columns["pkt_length"][i][j])
            rows["bytes"].append(packets[j])
            rows["l4_offset"].append(columns["pkt_l4_offset"][i][j])
            rows["payload_offset"].append(columns["pkt_payload_offset"][i][j])
    table = pa.Table.from_pydict(rows, schema=PACKET_SCHEMA)
    return table, PacketSampleReport(packets=total, duplicates=duplicates, kept=table.num_rows)
