"""Packet-level samples inherit their flow's split and never repeat across splits."""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from etbert.dataset.layout import read_flows
from etbert.dataset.prepare import PrepareConfig, prepare
from etbert.dataset.samples import packet_samples

REPO = Path(__file__).resolve().parents[1]


def test_packets_inherit_flow_split_and_label():
    flows = read_flows_of_corpus()
    samples, report = packet_samples(flows, packets_per_flow=5)
    split_of = dict(zip(flows.column("flow_id").to_pylist(), flows.column("split").to_pylist()))
    label_of = dict(zip(flows.column("flow_id").to_pylist(), flows.column("label").to_pylist()))
    for row in samples.select(["flow_id", "split", "label", "packet_index"]).to_pylist():
        assert row["split"] == split_of[row["flow_id"]]
        assert row["label"] == label_of[row["flow_id"]]
        assert row["packet_index"] < 5
    assert report.kept == samples.num_rows == report.packets - report.duplicates


def test_duplicate_packets_are_kept_once_in_the_earliest_split(tmp_path):
    root = tmp_path / "in" / "web"
    root.mkdir(parents=True)
    for i in range(12):  # every flow opens with the same SYN (once identities are masked), then differs
        client = f"10.0.{i}.1"
        packets = [
            Ether() / IP(src=client, dst="10.9.9.9") / TCP(sport=3000 + i, dport=443, flags="S"),
            Ether() / IP(src="10.9.9.9", dst=client) / TCP(sport=443, dport=3000 + i, flags="PA") / bytes(i + 1),
        ]
        for j, packet in enumerate(packets):
            packet.time = 100.0 + i + j * 0.01
        wrpcap(str(root / f"c{i}.pcap"), packets)
    prepare(tmp_path / "in", tmp_path / "ds", PrepareConfig())
    samples, report = packet_samples(read_flows(tmp_path / "ds"))
    assert report.packets == 24 and report.duplicates == 11
    syns = [r for r in samples.to_pylist() if r["packet_index"] == 0]
    assert len(syns) == 1 and syns[0]["split"] == "train"


def read_flows_of_corpus():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        prepare(REPO / "data" / "lab-default" / "ssh", Path(tmp) / "ds", PrepareConfig(labels="stem"))
        return read_flows(Path(tmp) / "ds")
