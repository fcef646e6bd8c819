"""The same traffic under every link type and file format gives the same flows (offsets come from headers)."""

from __future__ import annotations

from pathlib import Path

import dpkt
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, Dot1Q, Ether, Loopback
from scapy.utils import PcapNgWriter, wrpcap
from test_packets_linktypes import ENCAPSULATIONS

from etbert.dataset.layout import read_flows
from etbert.dataset.prepare import PrepareConfig, prepare


def ip_packets():
    out = []
    for i, (a, b, sp, dp, flags, size) in enumerate([
        ("10.1.1.1", "10.2.2.2", 5555, 443, "S", 0),
        ("10.2.2.2", "10.1.1.1", 443, 5555, "SA", 0),
        ("10.1.1.1", "10.2.2.2", 5555, 443, "PA", 517),
        ("10.2.2.2", "10.1.1.1", 443, 5555, "PA", 1400),
        ("10.1.1.1", "10.2.2.2", 5555, 443, "FA", 0),
    ]):
        out.append((1.0 + i * 0.01, IP(src=a, dst=b, id=100 + i) / TCP(sport=sp, dport=dp, flags=flags) / bytes(size)))
    out.append((2.0, IP(src="10.1.1.1", dst="10.3.3.3") / UDP(sport=999, dport=53) / b"query"))
    return out


def timed(packets):
    for t, packet in packets:
        packet.time = t
    return [p for _, p in packets]


def write_all(folder: Path) -> None:
    packets = ip_packets()
    wrpcap(str(folder / "ethernet.pcap"), timed([(t, Ether() / p) for t, p in packets]))
    wrpcap(str(folder / "vlan.pcap"), timed([(t, Ether() / Dot1Q(vlan=7) / Dot1Q(vlan=9) / p) for t, p in packets]))
    wrpcap(str(folder / "sll.pcap"), timed([(t, CookedLinux(proto=0x0800) / p) for t, p in packets]))
    wrpcap(str(folder / "null.pcap"), timed([(t, Loopback(type=2) / p) for t, p in packets]))
    with open(folder / "raw.pcap", "wb") as handle:  # LINKTYPE_RAW: no link header at all (ISCX-VPN style)
        writer = dpkt.pcap.Writer(handle, linktype=101)
        for t, p in packets:
            writer.writepkt(bytes(p), t)
    # pcapng (files mixing link types per interface are covered in test_capture_pcapng.py)
    writer = PcapNgWriter(str(folder / "ethernet.pcapng"))
    for frame in timed([(t, Ether() / p) for t, p in packets]):
        writer.write(frame)
    writer.close()


def flows_of(capture: Path, out: Path) -> list[dict]:
    """Each capture prepared on its own: across captures these flows are duplicates and would be removed."""
    manifest = prepare(capture, out, PrepareConfig(anonymize="none"))
    assert not manifest["problems"]
    rows = read_flows(out).to_pylist()
    for row in rows:
        for column in ("capture", "linktype", "flow_id", "flow_index", "label", "split"):
            row.pop(column)
    return sorted(rows, key=lambda f: (f["protocol"], f["client_port"]))


def test_every_link_type_yields_identical_flows(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_all(folder)
    reference = flows_of(folder / "ethernet.pcap", tmp_path / "ethernet")
    assert len(reference) == 2
    assert reference[0]["pkt_bytes"][0][:1] == b"\x45"  # stored bytes start at the IP header
    assert reference[0]["fwd_packets"] == 3 and reference[0]["bwd_packets"] == 2
    for name in ("vlan.pcap", "sll.pcap", "null.pcap", "raw.pcap", "ethernet.pcapng"):
        assert flows_of(folder / name, tmp_path / name) == reference, name


def dual_stack_packets(fill: int) -> list[tuple[float, int, bytes]]:
    """(time, ethertype, IP packet): a TCP and a UDP flow over each IP version, payload bytes ``fill``
    (captures of different fills hold no duplicate flows)."""
    payload = bytes([fill]) * 300
    packets = []
    for start, layer, ethertype, a, b in ((1.0, IP, 0x0800, "10.1.1.1", "10.2.2.2"),
                                          (3.0, IPv6, 0x86DD, "2001:db8::1", "2001:db8::2")):  # fmt: skip
        packets += [
            (start, ethertype, layer(src=a, dst=b) / TCP(sport=5555, dport=443, flags="S")),
            (start + 0.01, ethertype, layer(src=b, dst=a) / TCP(sport=443, dport=5555, flags="SA")),
            (start + 0.02, ethertype, layer(src=a, dst=b) / TCP(sport=5555, dport=443, flags="PA") / payload),
            (start + 0.03, ethertype, layer(src=b, dst=a) / TCP(sport=443, dport=5555, flags="PA") / payload[:90]),
            (start + 0.04, ethertype, layer(src=a, dst=b) / UDP(sport=999, dport=53) / payload[:40]),
        ]
    return [(t, ethertype, bytes(packet)) for t, ethertype, packet in packets]


def write_pcap(path: Path, linktype: int, frames: list[tuple[float, bytes]]) -> None:
    with open(path, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=linktype)
        for t, frame in frames:
            writer.writepkt(frame, t)


def test_variable_link_headers_yield_the_flows_of_ethernet(tmp_path):
    """PPP, Cisco HDLC, 802.11 (radiotap), NFLOG and pflog captures in one folder, each against the same
    packets over Ethernet: same 5-tuples, lengths, payload offsets, bytes from the IP header on."""
    folders = {"ethernet": tmp_path / "ethernet", "linked": tmp_path / "linked"}
    for folder in folders.values():
        folder.mkdir()
    for fill, (name, linktype, wrap) in enumerate(ENCAPSULATIONS):
        packets = dual_stack_packets(fill)
        write_pcap(folders["linked"] / f"{name}.pcap", linktype, [(t, wrap(e, p)[0]) for t, e, p in packets])
        write_pcap(folders["ethernet"] / f"{name}.pcap", 1, [(t, bytes(Ether(type=e)) + p) for t, e, p in packets])
    flows = {}
    for kind, folder in folders.items():
        manifest = prepare(folder, tmp_path / f"{kind}-dataset", PrepareConfig(anonymize="none"))
        assert not manifest["problems"]
        rows = read_flows(tmp_path / f"{kind}-dataset").to_pylist()
        flows[kind] = sorted(rows, key=lambda f: (f["capture"], f["flow_index"]))
    assert {(f["capture"], f["linktype"]) for f in flows["linked"]} == {(f"{n}.pcap", t) for n, t, _ in ENCAPSULATIONS}
    for row in flows["linked"] + flows["ethernet"]:
        for column in ("linktype", "flow_id", "split"):
            row.pop(column)
    assert len(flows["ethernet"]) == 4 * len(ENCAPSULATIONS)
    assert flows["linked"] == flows["ethernet"]
    reference = flows["ethernet"]
    assert {(f["ip_version"], f["protocol"]) for f in reference} == {(4, 6), (4, 17), (6, 6), (6, 17)}
    assert all(f["pkt_bytes"][0][:1] in (b"\x45", b"\x60") for f in reference)


@pytest.mark.parametrize("policy", ["seed-004", "strict"])
def test_policies_are_recorded_and_change_identity_bytes(tmp_path, policy):
    folder = tmp_path / "in"
    folder.mkdir()
    write_all(folder)
    prepare(folder / "raw.pcap", tmp_path / "raw", PrepareConfig(anonymize="none"))
    prepare(folder / "raw.pcap", tmp_path / "anon", PrepareConfig(anonymize=policy))
    raw = read_flows(tmp_path / "raw").to_pylist()
    anon = read_flows(tmp_path / "anon").to_pylist()
    for before, after in zip(raw, anon):
        for a, b in zip(before["pkt_bytes"], after["pkt_bytes"]):
            assert len(a) == len(b)
            assert a[12:20] != b[12:20]  # addresses replaced
            assert a[:4] == b[:4] and a[8:10] == b[8:10]  # version, length, TTL, protocol kept
            l4 = before["pkt_l4_offset"][0]
            assert a[l4 + 20 :] == b[l4 + 20 :] or before["protocol"] == 17  # TCP payload untouched


def test_ethernet_padding_is_not_stored_as_packet_bytes(tmp_path):
    from scapy.packet import Padding

    ack = IP(src="10.1.1.1", dst="10.2.2.2") / TCP(sport=5555, dport=443, flags="A")  # 40 bytes
    frame = Ether() / ack / Padding(load=b"\xee" * 6)  # padded to the 60-byte Ethernet minimum
    frame.time = 1.0
    wrpcap(str(tmp_path / "padded.pcap"), [frame])
    prepare(tmp_path / "padded.pcap", tmp_path / "ds", PrepareConfig(anonymize="none"))
    stored = read_flows(tmp_path / "ds").column("pkt_bytes").to_pylist()[0][0]
    assert stored == bytes(ack)
