"""One bidirectional flow as the meter emits it: plain data, one row of the dataset."""

from __future__ import annotations

from dataclasses import dataclass, field

# Direction of a packet relative to the flow's client (the initiator).
CLIENT_TO_SERVER = 0
SERVER_TO_CLIENT = 1


@dataclass
class FlowRecord:
    """A finished flow. Per-packet lists cover the first K packets only; totals and statistics cover all."""

    capture: str  # source capture, relative to the prepared input
    ip_version: int
    protocol: int  # 6 TCP, 17 UDP
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    start_ns: int
    end_ns: int
    end_reason: str  # "fin", "rst", "idle", "active" or "eof"
    linktype: int

    fwd_packets: int = 0  # client -> server
    bwd_packets: int = 0
    fwd_bytes: int = 0  # network-layer bytes
    bwd_bytes: int = 0
    fwd_payload_bytes: int = 0  # transport payload bytes
    bwd_payload_bytes: int = 0
    fragments: int = 0
    stats: dict[str, float] = field(default_factory=dict)  # e.g. fwd_len_mean, iat_std, syn_count

    n_bursts: int = 0  # maximal runs of same-direction packets over the whole flow
    burst_packets: list[int] = field(default_factory=list)  # first max_bursts bursts
    burst_bytes: list[int] = field(default_factory=list)

    pkt_direction: list[int] = field(default_factory=list)  # CLIENT_TO_SERVER / SERVER_TO_CLIENT
    pkt_length: list[int] = field(default_factory=list)  # network-layer length on the wire
    pkt_iat: list[float] = field(default_factory=list)  # seconds since the flow's previous packet
    pkt_tcp_flags: list[int] = field(default_factory=list)
    pkt_bytes: list[bytes] = field(default_factory=list)  # from the IP header on, capped
    pkt_l4_offset: list[int] = field(default_factory=list)  # TCP/UDP header start in pkt_bytes, -1 if none
    pkt_payload_offset: list[int] = field(default_factory=list)  # payload start in pkt_bytes, -1 if none

    @property
    def packets(self) -> int:
        return self.fwd_packets + self.bwd_packets

    @property
    def duration(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9
