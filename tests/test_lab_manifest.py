import json

import pytest
from scapy.all import IP, TCP, UDP, Ether, Raw, wrpcap

from etbert.lab.capture import summarise
from etbert.lab.manifest import CaptureRecord, ClassRecord, FlowOutcome, Manifest, read_manifest


def make_manifest() -> Manifest:
    captures = [
        CaptureRecord("ssh/ssh-1.pcap", first_flow=0, flows=2, packets=10, bytes=1000, connections=2, max_ip_length=1500, dropped=0),
        CaptureRecord("ssh/ssh-2.pcap", first_flow=2, flows=1, packets=4, bytes=300, connections=1, max_ip_length=120, dropped=1),
    ]
    record = ClassRecord(
        name="ssh", description="SSH", keylog=None, software={"openssh-client": "1:9.2p1"}, flows_planned=3, flows_failed=1,
        seconds=1.5, captures=captures,
        flows=[FlowOutcome(0, {"kind": "command", "output": 300}), FlowOutcome(1, {"kind": "sftp"}, "sftp exited with 1: boom"),
               FlowOutcome(2, {"kind": "scp-get"})],
    )  # fmt: skip
    return Manifest(
        seed=3, flows_per_class=3, captures_per_class=2, size_scale=0.5, netem=None, addresses={"client": "10.1.2.3"},
        host={"kernel": "6"}, classes=[record], unavailable={"wireguard": "missing wireguard-go"},
    )  # fmt: skip


def test_manifest_round_trips_through_its_folder(tmp_path):
    manifest = make_manifest()
    manifest.write(tmp_path)
    assert read_manifest(tmp_path) == manifest
    assert not list(tmp_path.glob("*.partial"))


def test_manifest_records_each_capture_file_and_sums_them_per_class(tmp_path):
    manifest = make_manifest()
    written = json.loads(manifest.write(tmp_path).read_text())
    captures = written["classes"][0]["captures"]
    assert [(c["path"], c["first_flow"], c["flows"]) for c in captures] == [("ssh/ssh-1.pcap", 0, 2), ("ssh/ssh-2.pcap", 2, 1)]
    record = read_manifest(tmp_path).classes[0]
    assert (record.packets, record.bytes, record.connections) == (14, 1300, 3)



def test_a_foreign_json_is_not_taken_for_a_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not an etbert lab manifest"):
        read_manifest(tmp_path)


def test_capture_summary_counts_bidirectional_five_tuples_and_largest_packet(tmp_path):
    a, b = "10.0.0.1", "10.0.0.2"
    packets = [
        Ether() / IP(src=a, dst=b) / TCP(sport=40000, dport=443) / Raw(b"x" * 1400),
        Ether() / IP(src=b, dst=a) / TCP(sport=443, dport=40000),  # same connection, reverse direction
        Ether() / IP(src=a, dst=b) / TCP(sport=40001, dport=443),
        Ether() / IP(src=a, dst=b) / UDP(sport=5353, dport=53) / Raw(b"q"),
        Ether() / IP(src=a, dst=b, proto=1) / Raw(b"\x08\x00icmp"),  # neither TCP nor UDP: no 5-tuple
    ]
    path = tmp_path / "c.pcap"
    wrpcap(str(path), packets)
    summary = summarise(path, dropped=2)
    assert summary.packets == 5
    assert summary.flows == 3
    assert summary.max_ip_length == 20 + 20 + 1400
    assert summary.bytes == sum(len(bytes(p)) for p in packets)
    assert summary.dropped == 2


def test_capture_summary_refuses_what_tcpdump_did_not_write(tmp_path):
    path = tmp_path / "not.pcap"
    path.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(40))
    with pytest.raises(ValueError, match="not a little-endian microsecond pcap"):
        summarise(path)
