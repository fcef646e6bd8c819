"""Features of the classic learners, computed from the real lab dataset and checked against the table and dpkt."""

from __future__ import annotations

import struct

import dpkt
import numpy as np
import pyarrow as pa
import pytest

from etbert.dataset.anonymize import identity_fields
from etbert.dataset.early import first_packets
from etbert.features import FEATURE_SETS, feature_columns, feature_matrix
from etbert.features.flow_stats import ABSENT, flow_statistics, packet_sequence
from etbert.features.headers import PAYLOAD_BYTES, header_features, identity_header_features

K = 10


@pytest.fixture(scope="module")
def flows(lab_tables) -> pa.Table:
    return lab_tables["train"]


def column(matrix: np.ndarray, names: list[str], name: str) -> np.ndarray:
    return matrix[:, names.index(name)]


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
def test_every_feature_set_is_a_finite_matrix_with_unique_names(flows, name):
    matrix, names = feature_matrix(flows, (name,), K)
    assert matrix.shape == (flows.num_rows, len(names))
    assert matrix.dtype == np.float64
    assert len(set(names)) == len(names)
    assert np.isfinite(matrix).all()


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
def test_feature_sets_read_only_the_columns_they_declare(flows, name):
    narrow = flows.select(list(feature_columns((name,))))
    assert np.array_equal(feature_matrix(narrow, (name,), K)[0], feature_matrix(flows, (name,), K)[0])


def test_feature_matrix_puts_sets_side_by_side_in_order(flows):
    matrix, names = feature_matrix(flows, ("sequence", "flow"), 4)
    sequence, sequence_names = packet_sequence(flows, 4)
    statistics, statistics_names = flow_statistics(flows)
    assert names == sequence_names + statistics_names
    assert np.array_equal(matrix, np.hstack([sequence, statistics]))


def test_unknown_feature_set_is_one_clear_error(flows):
    with pytest.raises(ValueError, match="unknown feature set"):
        feature_matrix(flows, ("flow", "colour"), K)


def test_no_feature_set_reads_addresses_and_only_identity_reads_ports():
    for name in FEATURE_SETS:
        assert not {"client_ip", "server_ip"} & set(feature_columns((name,)))
    for name in set(FEATURE_SETS) - {"identity"}:
        assert not {"client_port", "server_port"} & set(feature_columns((name,)))


def test_flow_statistics_copy_the_table_and_summarise_bursts(flows):
    matrix, names = flow_statistics(flows)
    for name in ("duration", "fwd_bytes", "bwd_iat_std", "syn_count", "n_bursts"):
        assert np.array_equal(column(matrix, names, name), flows.column(name).to_numpy().astype(float))
    bursts = flows.column("burst_bytes").to_pylist()
    assert np.allclose(column(matrix, names, "burst_bytes_max"), [max(b) if b else 0 for b in bursts])
    assert np.allclose(column(matrix, names, "burst_bytes_mean"), [np.mean(b) if b else 0 for b in bursts])
    assert np.allclose(column(matrix, names, "burst_bytes_std"), [np.std(b) if b else 0 for b in bursts])
    packets = flows.column("fwd_packets").to_numpy() + flows.column("bwd_packets").to_numpy()
    assert np.array_equal(column(matrix, names, "packets"), packets)


def test_packet_sequence_is_packet_major_and_pads_short_flows(flows):
    short = first_packets(flows, 3)  # every flow cut to at most 3 packets
    matrix, names = packet_sequence(short, 5)
    assert names[:4] == ["p0_length", "p0_direction", "p0_iat", "p1_length"]
    assert matrix.shape == (short.num_rows, 15)
    lengths = short.column("pkt_length").to_pylist()
    directions = short.column("pkt_direction").to_pylist()
    for row in range(short.num_rows):
        for packet in range(5):
            size = column(matrix, names, f"p{packet}_length")[row]
            sign = column(matrix, names, f"p{packet}_direction")[row]
            if packet < len(lengths[row]):
                assert size == lengths[row][packet]
                assert sign == (1.0 if directions[row][packet] == 0 else -1.0)
            else:
                assert size == sign == column(matrix, names, f"p{packet}_iat")[row] == ABSENT
    assert (column(matrix, names, "p4_length") == ABSENT).all()


def _per_packet(matrix: np.ndarray, names: list[str], row: int, packet: int, field: str) -> float:
    return matrix[row, names.index(f"p{packet}_{field}")]


def _dpkt_packets(flows: pa.Table, protocol: int, limit: int):
    """(row, packet index, dpkt IP, transport) of the first packets of flows of ``protocol``."""
    found = []
    for row, (proto, packets) in enumerate(zip(flows.column("protocol").to_pylist(),
                                               flows.column("pkt_bytes").to_pylist())):
        if proto != protocol:
            continue
        for index, data in enumerate(packets[:K]):
            ip = dpkt.ip.IP(data)
            found.append((row, index, ip, ip.data))
        if len(found) >= limit:
            break
    assert found
    return found


def test_ip_and_tcp_header_fields_equal_what_dpkt_parses(flows):
    matrix, names = header_features(flows, K)
    options_seen = set()
    for row, packet, ip, segment in _dpkt_packets(flows, dpkt.ip.IP_PROTO_TCP, 300):
        def value(field):
            return _per_packet(matrix, names, row, packet, field)
        assert isinstance(segment, dpkt.tcp.TCP)
        assert value("ip_version") == ip.v == 4
        assert value("ip_header_len") == ip.hl * 4
        assert value("ip_tos") == ip.tos
        assert value("ip_total_length") == ip.len
        assert value("ip_dont_fragment") == ip.df
        assert value("ip_more_fragments") == ip.mf
        assert value("ip_ttl") == ip.ttl
        assert value("ip_protocol") == ip.p
        assert value("tcp_header_len") == segment.off * 4
        assert value("tcp_flags") == segment.flags
        assert value("tcp_window") == segment.win
        assert value("udp_length") == ABSENT
        options = dict(dpkt.tcp.parse_opts(segment.opts))
        options_seen |= set(options)
        mss = options.get(dpkt.tcp.TCP_OPT_MSS)
        assert value("tcp_mss") == (struct.unpack(">H", mss)[0] if mss else ABSENT)
        scale = options.get(dpkt.tcp.TCP_OPT_WSCALE)
        assert value("tcp_window_scale") == (scale[0] if scale else ABSENT)
        for field, kind in (("sack_permitted", dpkt.tcp.TCP_OPT_SACKOK), ("sack", dpkt.tcp.TCP_OPT_SACK),
                            ("timestamps", dpkt.tcp.TCP_OPT_TIMESTAMP), ("mss", dpkt.tcp.TCP_OPT_MSS)):
            assert value(f"tcp_option_{field}") == (kind in options)
        payload = bytes(segment.data)
        assert value("payload_length") == ip.len - ip.hl * 4 - segment.off * 4
        for i in range(PAYLOAD_BYTES):
            assert value(f"payload_{i}") == (payload[i] if i < len(payload) else ABSENT)
    # the lab's handshakes carry these options, so the comparisons above were not all "absent"
    assert {dpkt.tcp.TCP_OPT_MSS, dpkt.tcp.TCP_OPT_WSCALE, dpkt.tcp.TCP_OPT_TIMESTAMP} <= options_seen


def test_udp_header_fields_equal_what_dpkt_parses(flows):
    matrix, names = header_features(flows, K)
    for row, packet, ip, datagram in _dpkt_packets(flows, dpkt.ip.IP_PROTO_UDP, 200):
        def value(field):
            return _per_packet(matrix, names, row, packet, field)
        assert isinstance(datagram, dpkt.udp.UDP)
        assert value("ip_protocol") == ip.p
        assert value("udp_length") == datagram.ulen
        assert value("tcp_flags") == value("tcp_mss") == value("tcp_option_mss") == ABSENT
        payload = bytes(datagram.data)
        assert value("payload_length") == datagram.ulen - 8
        for i in range(PAYLOAD_BYTES):
            assert value(f"payload_{i}") == (payload[i] if i < len(payload) else ABSENT)


def test_identity_fields_equal_what_dpkt_parses(flows):
    matrix, names = identity_header_features(flows, K)
    assert np.array_equal(matrix[:, 0], flows.column("client_port").to_numpy())
    assert np.array_equal(matrix[:, 1], flows.column("server_port").to_numpy())
    for row, packet, ip, segment in _dpkt_packets(flows, dpkt.ip.IP_PROTO_TCP, 100):
        def value(field):
            return _per_packet(matrix, names, row, packet, field)
        assert [value(f"src_addr_{i}") for i in range(16)] == [*ip.src, *[ABSENT] * 12]
        assert [value(f"dst_addr_{i}") for i in range(4)] == list(ip.dst)
        assert (value("ip_id"), value("ip_checksum")) == (ip.id, ip.sum)
        assert (value("tcp_seq"), value("tcp_ack"), value("l4_checksum")) == (segment.seq, segment.ack, segment.sum)
        stamp = dict(dpkt.tcp.parse_opts(segment.opts)).get(dpkt.tcp.TCP_OPT_TIMESTAMP)
        expected = struct.unpack(">II", stamp) if stamp else (ABSENT, ABSENT)
        assert (value("tcp_timestamp_value"), value("tcp_timestamp_echo")) == expected
        assert value("ipv6_flow_label") == ABSENT


def test_missing_packets_are_absent_in_header_features(flows):
    short = first_packets(flows, 2)
    matrix, names = header_features(short, 4)
    later = [i for i, name in enumerate(names) if name.startswith(("p2_", "p3_"))]
    assert (matrix[:, later] == ABSENT).all()
    assert (column(matrix, names, "p0_ip_version") == 4).all()


def _rewritten(flows: pa.Table, rewrite) -> pa.Table:
    """The flows with every stored packet replaced by ``rewrite(bytearray, l4 offset)``'s result."""
    packets = []
    for data, offsets in zip(flows.column("pkt_bytes").to_pylist(), flows.column("pkt_l4_offset").to_pylist()):
        flow = []
        for packet, l4 in zip(data, offsets):
            changed = bytearray(packet)
            rewrite(changed, l4)
            flow.append(bytes(changed))
        packets.append(flow)
    index = flows.column_names.index("pkt_bytes")
    return flows.set_column(index, flows.schema.field(index), pa.array(packets, flows.schema.field(index).type))


def test_header_features_ignore_every_identity_field(flows):
    rng = np.random.default_rng(7)

    def scramble_identity(packet: bytearray, l4: int) -> None:
        for start, stop, _kind in identity_fields(bytes(packet), l4):
            packet[start:stop] = rng.integers(0, 256, stop - start, dtype=np.uint8).tobytes()

    scrambled = _rewritten(flows, scramble_identity)
    assert scrambled.column("pkt_bytes") != flows.column("pkt_bytes")
    assert np.array_equal(header_features(scrambled, K)[0], header_features(flows, K)[0])
    assert not np.array_equal(identity_header_features(scrambled, K)[0], identity_header_features(flows, K)[0])


def test_header_features_see_a_changed_ttl(flows):
    def lower_ttl(packet: bytearray, l4: int) -> None:
        packet[8] -= 1  # IPv4 TTL

    changed = _rewritten(flows, lower_ttl)
    before, names = header_features(flows, K)
    after, _ = header_features(changed, K)
    differs = np.flatnonzero((before != after).any(axis=0))
    assert {names[i] for i in differs} == {f"p{i}_ip_ttl" for i in range(K)}


def test_ipv6_fields_equal_what_dpkt_builds():
    options = (struct.pack(">BBH", dpkt.tcp.TCP_OPT_MSS, 4, 1440) + bytes([dpkt.tcp.TCP_OPT_NOP])
               + struct.pack(">BBB", dpkt.tcp.TCP_OPT_WSCALE, 3, 7))
    segment = dpkt.tcp.TCP(sport=443, dport=50000, seq=99, flags=dpkt.tcp.TH_SYN, win=1000, opts=options,
                           off=(20 + len(options)) // 4, data=b"\x16\x03\x01")
    ip6 = dpkt.ip6.IP6(src=bytes(range(16)), dst=bytes(range(16, 32)), nxt=dpkt.ip.IP_PROTO_TCP, hlim=57, fc=0x2A,
                       flow=0x12345, data=segment, plen=len(bytes(segment)))
    packet = bytes(ip6)
    flows = pa.table({
        "protocol": pa.array([6], pa.uint8()), "client_port": pa.array([50000], pa.uint16()),
        "server_port": pa.array([443], pa.uint16()), "pkt_direction": pa.array([[1]], pa.list_(pa.int8())),
        "pkt_length": pa.array([[len(packet)]], pa.list_(pa.int32())),
        "pkt_bytes": pa.array([[packet]], pa.list_(pa.binary())),
        "pkt_l4_offset": pa.array([[40]], pa.list_(pa.int16())),
        "pkt_payload_offset": pa.array([[40 + 20 + len(options)]], pa.list_(pa.int16())),
    })
    matrix, names = header_features(flows, 2)
    fields = dict(zip(names, matrix[0]))
    assert fields["p0_ip_version"] == 6 and fields["p0_ip_header_len"] == 40
    assert (fields["p0_ip_tos"], fields["p0_ip_ttl"], fields["p0_ip_protocol"]) == (0x2A, 57, 6)
    assert fields["p0_ip_total_length"] == len(packet)
    assert fields["p0_ip_dont_fragment"] == ABSENT
    assert (fields["p0_tcp_mss"], fields["p0_tcp_window_scale"], fields["p0_tcp_option_timestamps"]) == (1440, 7, 0)
    assert [fields[f"p0_payload_{i}"] for i in range(4)] == [0x16, 3, 1, ABSENT]
    assert fields["p0_direction"] == 1 and fields["p1_direction"] == ABSENT
    identity, identity_names = identity_header_features(flows, 1)
    identity = dict(zip(identity_names, identity[0]))
    assert [identity[f"p0_dst_addr_{i}"] for i in range(16)] == list(range(16, 32))
    assert (identity["p0_ipv6_flow_label"], identity["p0_tcp_seq"], identity["p0_ip_id"]) == (0x12345, 99, ABSENT)
