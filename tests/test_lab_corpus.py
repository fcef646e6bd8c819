"""The bundled default corpus (data/lab-default): parses, holds the promised classes, counts and captures, respects
MTU 1500, and splits by capture into train, val and test for every class."""

from pathlib import Path

import dpkt
import pytest

from etbert.dataset.layout import read_flows
from etbert.dataset.prepare import PrepareConfig, prepare
from etbert.lab.manifest import read_manifest

CORPUS = Path(__file__).resolve().parents[1] / "data" / "lab-default"
ENCRYPTED = {"tls-api", "tls-page", "tls-download", "tls-upload", "tls-stream", "ssh", "shadowsocks", "v2ray", "quic", "wireguard", "openvpn"}
MIN_CONNECTIONS = 40
MIN_CAPTURES = 3  # one each for train, val and test under --split capture
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
        assert len(record.captures) >= MIN_CAPTURES, record.name
        assert sorted(c.path for c in record.captures) == sorted(p.relative_to(CORPUS).as_posix() for p in (CORPUS / record.name).glob("*.pcap"))
        assert sum(c.flows for c in record.captures) == record.flows_planned, record.name
        seen: set[tuple] = set()
        for capture in record.captures:
            connections, largest = read_capture(CORPUS / capture.path)
            assert capture.flows >= 1 and len(connections) == capture.connections >= 1, capture.path
            assert largest <= MTU, f"{capture.path}: {largest}-byte IP packet"
            assert not seen & set(connections), f"{capture.path}: a connection also in an earlier capture of its class"
            seen |= set(connections)
        assert len(seen) >= MIN_CONNECTIONS, record.name


def test_capture_split_puts_every_class_in_train_val_and_test_without_sharing_a_capture(manifest, tmp_path):
    prepare(CORPUS, tmp_path / "ds", PrepareConfig(split="capture"))
    rows = read_flows(tmp_path / "ds", columns=["label", "capture", "split"]).to_pylist()
    splits_of_capture: dict[str, set[str]] = {}
    splits_of_class: dict[str, set[str]] = {}
    for row in rows:
        splits_of_capture.setdefault(row["capture"], set()).add(row["split"])
        splits_of_class.setdefault(row["label"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in splits_of_capture.values())
    assert splits_of_class == {record.name: {"train", "val", "test"} for record in manifest.classes}
