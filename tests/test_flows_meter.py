"""Flow assembly over real packets built with scapy, decoded by the real decoder."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from etbert.capture.frames import FrameBatch
from etbert.flows.meter import FlowMeter, MeterConfig
from etbert.flows.schema import TCP_FLAG_NAMES
from etbert.packets.decode import decode

NS = 1_000_000_000
C, S = "10.0.0.1", "10.0.0.2"


def tcp_packet(t, src, dst, sport, dport, flags, payload=b""):
    return (t, Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags) / payload)


def udp_packet(t, src, dst, sport, dport, payload=b"x"):
    return (t, Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload)


def connection(t0, sport=40000, data=((0, 100), (1, 1400), (0, 50), (0, 60), (1, 700)), close=True):
    """A TCP connection C:sport -> S:443: handshake, data packets (direction, size), FIN exchange."""
    out = [
        tcp_packet(t0, C, S, sport, 443, "S"),
        tcp_packet(t0 + 0.01, S, C, 443, sport, "SA"),
        tcp_packet(t0 + 0.02, C, S, sport, 443, "A"),
    ]
    t = t0 + 0.02
    for direction, size in data:
        t += 0.01
        a, b, pa_, pb = (C, S, sport, 443) if direction == 0 else (S, C, 443, sport)
        out.append(tcp_packet(t, a, b, pa_, pb, "PA", bytes(size)))
    if close:
        out += [
            tcp_packet(t + 0.01, C, S, sport, 443, "FA"),
            tcp_packet(t + 0.02, S, C, 443, sport, "FA"),
            tcp_packet(t + 0.03, C, S, sport, 443, "A"),
        ]
    return out


def frames_of(packets) -> FrameBatch:
    return FrameBatch.from_frames([(int(round(t * NS)), 1, bytes(p)) for t, p in packets])


def meter_all(packets, config=None, batch_size=None) -> pa.Table:
    meter = FlowMeter(config or MeterConfig(), capture="test.pcap")
    batches = []
    frames = [(int(round(t * NS)), 1, bytes(p)) for t, p in packets]
    step = batch_size or max(len(frames), 1)
    for i in range(0, len(frames), step):
        out = meter.add(decode(FrameBatch.from_frames(frames[i : i + step])))
        if out is not None:
            batches.append(out)
    out = meter.flush()
    if out is not None:
        batches.append(out)
    return pa.Table.from_batches(batches).sort_by([("start_time", "ascending"), ("client_port", "ascending")])


def rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


def test_tcp_connection_is_one_flow_with_client_as_initiator():
    packets = connection(1000.0)
    [flow] = rows(meter_all(packets))
    assert (flow["client_ip"], flow["client_port"], flow["server_ip"], flow["server_port"]) == (C, 40000, S, 443)
    assert flow["protocol"] == 6 and flow["ip_version"] == 4
    assert flow["fwd_packets"] == 2 + 3 + 2 and flow["bwd_packets"] == 1 + 2 + 1
    assert flow["end_reason"] == "fin"
    assert {flag: flow[f"{flag}_count"] for flag in TCP_FLAG_NAMES} == {
        "fin": 2, "syn": 2, "rst": 0, "psh": 5, "ack": 10, "urg": 0, "ece": 0, "cwr": 0}
    assert flow["fwd_payload_bytes"] == 100 + 50 + 60 and flow["bwd_payload_bytes"] == 1400 + 700
    assert flow["duration"] == pytest.approx(0.02 + 0.05 + 0.03)
    # directions of the first K=10 packets: S, SA, A, then the data, then FIN exchange
    assert flow["pkt_direction"] == [0, 1, 0, 0, 1, 0, 0, 1, 0, 1]
    assert flow["pkt_tcp_flags"][:2] == [0x02, 0x12]
    assert flow["pkt_iat"][0] == 0.0 and flow["pkt_iat"][1] == pytest.approx(0.01)


def test_bursts_are_maximal_same_direction_runs_over_the_whole_flow():
    packets = connection(5.0)
    [flow] = rows(meter_all(packets, MeterConfig(max_packets=3)))
    directions = [0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0]
    runs = []
    for d in directions:
        if runs and runs[-1][0] == d:
            runs[-1][1] += 1
        else:
            runs.append([d, 1])
    assert flow["n_bursts"] == len(runs)
    assert flow["burst_packets"] == [r[1] for r in runs]
    lengths = [len(bytes(p[IP])) for _, p in packets]
    assert sum(flow["burst_bytes"]) == sum(lengths) == flow["fwd_bytes"] + flow["bwd_bytes"]
    assert len(flow["pkt_direction"]) == 3  # K caps stored packets, not the counts
    assert flow["fwd_packets"] + flow["bwd_packets"] == len(packets)


def test_max_bursts_caps_stored_bursts_but_not_their_count():
    data = tuple((i % 2, 10) for i in range(20))
    [flow] = rows(meter_all(connection(0.0, data=data), MeterConfig(max_bursts=4)))
    assert len(flow["burst_packets"]) == 4
    assert flow["n_bursts"] > 4


def test_batch_boundaries_do_not_change_the_flows():
    packets = []
    for i in range(6):
        packets += connection(100.0 + i * 0.003, sport=41000 + i)
    packets += [udp_packet(100.0 + i * 0.5, C, "10.0.0.9", 5353, 53) for i in range(5)]
    packets += [udp_packet(300.0 + i, "10.0.0.9", C, 53, 5353) for i in range(3)]  # after the idle timeout
    packets.sort(key=lambda p: p[0])
    reference = rows(meter_all(packets))
    for batch_size in (1, 2, 7, 13):
        flows = rows(meter_all(packets, batch_size=batch_size))
        assert len(flows) == len(reference) == 8
        for got, expected in zip(flows, reference):
            for column, value in expected.items():
                if column == "flow_index":
                    continue
                if isinstance(value, float):  # moments merged in another order differ in the last bits
                    assert got[column] == pytest.approx(value, rel=1e-9, abs=1e-12), (batch_size, column)
                else:
                    assert got[column] == value, (batch_size, column)


def test_idle_timeout_splits_a_flow():
    packets = [udp_packet(t, C, S, 1234, 53) for t in (0.0, 1.0, 200.0, 201.0)]
    flows = rows(meter_all(packets, MeterConfig(idle_timeout=60)))
    assert [f["fwd_packets"] for f in flows] == [2, 2]
    assert flows[0]["end_reason"] == "idle"
    assert flows[1]["end_reason"] == "eof"


def test_active_timeout_cuts_long_flows():
    packets = [udp_packet(t, C, S, 1234, 53) for t in np.arange(0.0, 400.0, 10.0)]
    flows = rows(meter_all(packets, MeterConfig(idle_timeout=60, active_timeout=100), batch_size=5))
    assert sum(f["fwd_packets"] for f in flows) == 40
    assert all(f["duration"] <= 100 for f in flows)
    assert [f["end_reason"] for f in flows[:-1]] == ["active"] * (len(flows) - 1)


def test_new_syn_after_fin_starts_a_new_flow_but_trailing_acks_join_the_old_one():
    first = connection(10.0, sport=40000)
    second = connection(11.0, sport=40000)  # same 5-tuple reused one second later
    trailing = [tcp_packet(10.5, C, S, 40000, 443, "A")]  # a late ACK, within the close grace
    flows = rows(meter_all(first + trailing + second))
    assert len(flows) == 2
    assert flows[0]["fwd_packets"] + flows[0]["bwd_packets"] == len(first) + 1
    assert flows[1]["fwd_packets"] + flows[1]["bwd_packets"] == len(second)


def test_rst_ends_a_flow_and_a_pause_after_it_starts_a_new_one():
    packets = connection(0.0, close=False) + [tcp_packet(0.2, S, C, 443, 40000, "R")]
    packets += [tcp_packet(30.0, C, S, 40000, 443, "PA", b"late")]  # after the close grace
    flows = rows(meter_all(packets))
    assert [f["end_reason"] for f in flows] == ["rst", "eof"]


def test_syn_ack_first_makes_the_receiver_the_client():
    packets = [tcp_packet(0.0, S, C, 443, 40000, "SA"), tcp_packet(0.01, C, S, 40000, 443, "A")]
    [flow] = rows(meter_all(packets))
    assert (flow["client_ip"], flow["client_port"]) == (C, 40000)
    assert flow["pkt_direction"] == [1, 0]


def test_statistics_match_numpy():
    sizes = [(0, 10), (0, 300), (1, 1000), (0, 5), (1, 20), (1, 1400)]
    packets = connection(0.0, data=sizes, close=False)
    [flow] = rows(meter_all(packets, batch_size=3))
    lengths = np.array([len(bytes(p[IP])) for _, p in packets])
    direction = np.array([0, 1, 0] + [d for d, _ in sizes])
    times = np.array([t for t, _ in packets])
    for d, prefix in ((0, "fwd"), (1, "bwd")):
        sel = lengths[direction == d]
        assert flow[f"{prefix}_len_mean"] == pytest.approx(sel.mean())
        assert flow[f"{prefix}_len_std"] == pytest.approx(sel.std())
        assert flow[f"{prefix}_len_max"] == sel.max()
        assert flow[f"{prefix}_iat_mean"] == pytest.approx(np.diff(times[direction == d]).mean())
    assert flow["iat_max"] == pytest.approx(np.diff(times).max())
    assert flow["iat_std"] == pytest.approx(np.diff(times).std(), abs=1e-9)


def test_stored_bytes_start_at_the_ip_header_and_respect_the_cap():
    packets = connection(0.0)
    [flow] = rows(meter_all(packets, MeterConfig(max_packet_bytes=64)))
    first_ip = bytes(packets[0][1][IP])
    assert flow["pkt_bytes"][0] == first_ip
    assert flow["pkt_l4_offset"][0] == 20 and flow["pkt_payload_offset"][0] == 40
    assert all(len(b) <= 64 for b in flow["pkt_bytes"])
    assert flow["pkt_bytes"][4] == bytes(packets[4][1][IP])[:64]
    assert flow["pkt_length"][4] == len(bytes(packets[4][1][IP]))


def test_ipv6_flow_and_addresses_as_text():
    packets = [
        (0.0, Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=5000, dport=443) / b"hello"),
        (0.1, Ether() / IPv6(src="2001:db8::2", dst="2001:db8::1") / UDP(sport=443, dport=5000) / b"world!"),
    ]
    [flow] = rows(meter_all(packets))
    assert flow["ip_version"] == 6
    assert (flow["client_ip"], flow["server_ip"]) == ("2001:db8::1", "2001:db8::2")
    assert flow["pkt_direction"] == [0, 1]


def test_later_fragments_join_their_flow_and_orphans_are_counted():
    big = IP(src=C, dst=S, id=77) / UDP(sport=1111, dport=2222) / bytes(3000)
    pieces = fragment(big, fragsize=1000)
    packets = [(i * 0.001, Ether() / piece) for i, piece in enumerate(pieces)]
    orphan = IP(src=C, dst=S, id=99, frag=100, proto=17) / bytes(100)
    packets.append((0.5, Ether() / orphan))
    meter = FlowMeter(MeterConfig(), capture="x")
    out = meter.add(decode(frames_of(packets)))
    assert out is None
    [flow] = meter.flush().to_pylist()
    assert flow["fwd_packets"] == len(pieces) and flow["fragments"] == len(pieces)
    assert meter.counters.orphan_fragments == 1


def test_idle_flows_leave_memory_while_the_capture_goes_on():
    packets = [udp_packet(float(i), C, S, 10000 + i, 53) for i in range(50)]
    packets += [udp_packet(500.0, C, S, 9999, 53)]
    meter = FlowMeter(MeterConfig(idle_timeout=60), capture="x")
    finished = 0
    for i in range(0, len(packets), 10):
        out = meter.add(decode(frames_of(packets[i : i + 10])))
        finished += 0 if out is None else out.num_rows
        assert meter.active_flows <= 50
    assert finished == 50  # all expired by the packet at t=500
    assert meter.active_flows == 1


def test_a_long_flow_survives_thousands_of_short_flows_ending_around_it():
    # Short flows end and leave by the thousand (the meter's key table is compacted on the way, a
    # source of bugs); the long flow must stay one flow, and a short flow's 5-tuple seen again after
    # it ended must start a new flow.
    long_flow = [udp_packet(i * 0.5, C, S, 5000, 443) for i in range(41)]
    short = [udp_packet(i * 0.002, C, S, 10000 + i % 6000, 53) for i in range(9000)]  # 3000 tuples twice
    packets = sorted(long_flow + short, key=lambda p: p[0])
    table = meter_all(packets, MeterConfig(idle_timeout=1.0, close_grace=0.1), batch_size=500)
    ports = table.column("client_port").to_pylist()
    assert ports.count(5000) == 1
    assert table.filter(pa.compute.equal(table.column("client_port"), 5000)).column("fwd_packets")[0].as_py() == 41
    assert len(ports) == 1 + 9000  # every short packet a flow: ports 10000..12999 come back 12 s later


def test_kept_bytes_stay_right_when_the_byte_store_drops_those_of_ended_flows():
    # 6,000 short flows of 900-byte payloads end around a long flow: the store of kept packet bytes
    # must drop theirs as they leave (bounded memory) and move the bytes of open flows, which must come
    # out unchanged.
    long_flow = [udp_packet(i * 0.5, C, S, 5000, 443, bytes([i]) * 700) for i in range(24)]
    short = [udp_packet(i * 0.002, C, S, 10000 + i, 53, i.to_bytes(2, "big") * 450) for i in range(6000)]
    packets = sorted(long_flow + short, key=lambda p: p[0])
    meter = FlowMeter(MeterConfig(idle_timeout=1.0, close_grace=0.1, max_packets=10), capture="test.pcap")
    tables, largest_store = [], 0
    for i in range(0, len(packets), 100):
        out = meter.add(decode(frames_of(packets[i : i + 100])))
        tables += [] if out is None else [pa.Table.from_batches([out])]
        largest_store = max(largest_store, meter._packet_bytes.used)
    tables.append(pa.Table.from_batches([meter.flush()]))
    table = pa.concat_tables(tables)
    assert largest_store < 3_000_000 < 6000 * 928  # a second's worth of flows, not all the bytes seen
    for row in table.to_pylist():
        payloads = [packet[28:] for packet in row["pkt_bytes"]]  # after IPv4 (20) and UDP (8) headers
        if row["client_port"] == 5000:
            assert payloads == [bytes([i]) * 700 for i in range(10)]
        else:
            assert payloads == [(row["client_port"] - 10000).to_bytes(2, "big") * 450]


_HOSTS = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
_FLAGS = ("S", "SA", "A", "PA", "FA", "R", "")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 400), st.sampled_from(_HOSTS), st.sampled_from(_HOSTS),
                          st.sampled_from((1000, 2000, 443)), st.booleans(), st.sampled_from(_FLAGS),
                          st.integers(0, 300)), min_size=1, max_size=40),
       st.integers(1, 7))
def test_any_packet_sequence_gives_the_same_flows_whatever_the_batches(spec, batch_size):
    # Random hosts, ports, flags, sizes and times, with timeouts short enough to cut: every packet lands in
    # exactly one flow, in whatever order the times come; and when they come in order (as a capture
    # writes them), batch boundaries change nothing. (Times that go back by more than the idle timeout,
    # as in concatenated captures, let expiry between batches cut a flow one batch would have kept.)
    packets = [tcp_packet(t, a, b, sport, 443, flags, bytes(size)) if tcp else udp_packet(t, a, b, sport, 53, bytes(size))
               for t, a, b, sport, tcp, flags, size in spec]
    config = MeterConfig(idle_timeout=50, active_timeout=120, close_grace=2)
    for batches in (None, batch_size):
        flows = meter_all(packets, config, batch_size=batches)
        assert pc.sum(pc.add(flows.column("fwd_packets"), flows.column("bwd_packets"))).as_py() == len(packets)
    packets.sort(key=lambda packet: packet[0])
    whole = meter_all(packets, config)
    split = meter_all(packets, config, batch_size=batch_size)
    key = [(name, "ascending") for name in ("start_time", "client_ip", "client_port", "server_ip", "server_port",
                                            "protocol", "fwd_packets", "bwd_packets")]
    whole, split = whole.drop(["flow_index"]).sort_by(key), split.drop(["flow_index"]).sort_by(key)
    for column in whole.column_names:
        got, expected = split.column(column).to_pylist(), whole.column(column).to_pylist()
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12) if whole.schema.field(column).type == pa.float64() \
            else got == expected, column


def test_flows_leave_in_order_of_their_first_packet_whichever_slot_they_held():
    # A ends after the first batch and D, starting later, reuses its slot; B, C and D then end together
    # at the end of the capture and must leave as B, C, D: by first packet, not by slot.
    first = connection(1000.0, sport=40001) + [udp_packet(1000.5, C, S, 5000 + i, 53) for i in range(2)]
    first.append(udp_packet(1010.0, C, S, 5000, 53))  # moves the clock past A's close grace
    second = [udp_packet(1011.0, C, S, 6000, 53)]
    meter = FlowMeter(capture="test.pcap")
    ended = meter.add(decode(frames_of(first)))
    assert ended.column("client_port").to_pylist() == [40001]
    assert meter.add(decode(frames_of(second))) is None
    assert meter.flush().column("client_port").to_pylist() == [5000, 5001, 6000]


def test_a_batch_with_more_new_flows_than_free_slots_keeps_every_flow_whole():
    # 3,000 flows open in one batch (the table starts with 1,024 slots and grows mid-batch), and each gets
    # its second packet in the next batch, so every key is looked up again after the table was rebuilt.
    hosts = [(f"10.1.{i // 250}.{i % 250 + 1}", 1024 + i) for i in range(3000)]
    first = [udp_packet(1000.0 + i * 1e-4, h, S, port, 53) for i, (h, port) in enumerate(hosts)]
    second = [udp_packet(1001.0 + i * 1e-4, S, h, 53, port) for i, (h, port) in enumerate(reversed(hosts))]
    table = meter_all(first + second, batch_size=len(first))
    assert table.num_rows == 3000
    assert set(table.column("fwd_packets").to_pylist()) == {1}
    assert set(table.column("bwd_packets").to_pylist()) == {1}
    assert table.column("client_port").to_pylist() == [port for _, port in hosts]
