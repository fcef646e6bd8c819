"""The bundled default corpus (data/lab-default): parses, holds the promised classes and counts, respects MTU 1500."""

from pathlib import Path

import dpkt
import pytest

from etbert.lab.manifest import read_manifest

CORPUS = Path(__file__).resolve().parents[1] / "data" / "lab-default"
ENCRYPTED = {"tls-api", "tls-page", "tls-download", "tls-upload", "tls-stream", "ssh", "shadowsocks", "v2ray", "quic", "wireguard", "openvpn"}
MIN_CONNECTIONS = 40
MTU = 1500


@pytest.fixture(scope="module")
def manifest():
    if not (CORPUS / "manifest.json").exists():
        pytest.skip(f"bundled corpus not found at {CORPUS}")
    return read_manifest(CORPUS)


def read_capture(path: Path) -> tuple[dict[tuple, int], int]:
    """Connections (bidirectional 5-tuples, with packet counts) and the largest IP packet of one capture."""
    connections: dict[tuple, int] = {}
    largest = 0
    with path.open("rb") as stream:
        for _, frame in dpkt.pcap.Reader(stream):
            ip = dpkt.ethernet.Ethernet(frame).data
            assert isinstance(ip, dpkt.ip.IP), f"{path.name}: non-IPv4 frame"
            assert len(frame) - 14 == ip.len, f"{path.name}: frame truncated or padded"
            largest = max(largest, ip.len)
            if isinstance(ip.data, (dpkt.tcp.TCP, dpkt.udp.UDP)):
                key = (ip.p, *sorted([(ip.src, ip.data.sport), (ip.dst, ip.data.dport)]))
                connections[key] = connections.get(key, 0) + 1
    return connections, largest


def test_corpus_has_every_promised_class_and_nothing_unlisted(manifest):
    names = {record.name for record in manifest.classes}
    assert ENCRYPTED <= names and "background" in names
    assert len(names - {"background"}) >= 6
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert folders == names
    assert sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file()) < 10_000_000


def test_every_capture_parses_with_enough_flows_and_no_packet_above_the_mtu(manifest):
    for record in manifest.classes:
        assert record.flows_planned >= MIN_CONNECTIONS and record.flows_failed == 0, record.name
        connections, largest = read_capture(CORPUS / record.capture)
        assert len(connections) >= MIN_CONNECTIONS, record.name
        assert len(connections) == record.connections, record.name
        assert largest <= MTU, f"{record.name}: {largest}-byte IP packet"
