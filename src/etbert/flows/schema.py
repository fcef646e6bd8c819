"""The flow table: what the flow meter emits, one row per bidirectional flow (Arrow schema).

Per-packet list columns cover the first K packets of the flow; totals and statistics cover every packet.
"Forward" (fwd) is client -> server, the client being the flow's initiator.
"""

from __future__ import annotations

import pyarrow as pa

CLIENT_TO_SERVER = 0
SERVER_TO_CLIENT = 1

END_REASONS = ("fin", "rst", "idle", "active", "eof")

TCP_FLAG_NAMES = ("fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr")  # bit 0 .. bit 7

_STAT_FIELDS = [
    pa.field(f"{prefix}_{stat}", pa.float64())
    for prefix in ("fwd_len", "bwd_len", "iat", "fwd_iat", "bwd_iat")
    for stat in ("min", "max", "mean", "std")
]

FLOW_SCHEMA = pa.schema(
    [
        pa.field("capture", pa.string()),
        pa.field("flow_index", pa.int64()),  # order in which the meter finished flows of this capture
        pa.field("linktype", pa.int32()),
        pa.field("ip_version", pa.uint8()),
        pa.field("protocol", pa.uint8()),
        pa.field("client_ip", pa.string()),
        pa.field("client_port", pa.uint16()),
        pa.field("server_ip", pa.string()),
        pa.field("server_port", pa.uint16()),
        pa.field("start_time", pa.float64()),  # seconds since the Unix epoch
        pa.field("duration", pa.float64()),  # seconds
        pa.field("end_reason", pa.string()),
        pa.field("fwd_packets", pa.int64()),
        pa.field("bwd_packets", pa.int64()),
        pa.field("fwd_bytes", pa.int64()),  # network-layer bytes
        pa.field("bwd_bytes", pa.int64()),
        pa.field("fwd_payload_bytes", pa.int64()),  # transport payload bytes
        pa.field("bwd_payload_bytes", pa.int64()),
        *_STAT_FIELDS,  # seconds for IATs, bytes for lengths; 0 where a direction has too few packets
        *[pa.field(f"{flag}_count", pa.int32()) for flag in TCP_FLAG_NAMES],
        pa.field("fragments", pa.int32()),
        pa.field("n_bursts", pa.int32()),  # maximal runs of same-direction packets over the whole flow
        pa.field("burst_packets", pa.list_(pa.int32())),  # first max_bursts bursts
        pa.field("burst_bytes", pa.list_(pa.int64())),
        pa.field("pkt_direction", pa.list_(pa.int8())),
        pa.field("pkt_length", pa.list_(pa.int32())),  # network-layer length on the wire
        pa.field("pkt_iat", pa.list_(pa.float64())),  # seconds since the flow's previous packet
        pa.field("pkt_tcp_flags", pa.list_(pa.uint8())),
        pa.field("pkt_bytes", pa.list_(pa.binary())),  # from the IP header on, capped at max_packet_bytes
        pa.field("pkt_l4_offset", pa.list_(pa.int16())),  # TCP/UDP header start in pkt_bytes, -1 if none
        pa.field("pkt_payload_offset", pa.list_(pa.int16())),  # payload start in pkt_bytes, -1 if none
    ]
)
