"""The decoder against dpkt on the real captures in ../shared/data: every packet dpkt decodes to
IP gets the same addresses, protocol, ports, TCP flags and payload from both."""

import socket
from pathlib import Path

import dpkt
import numpy as np
import pytest

from etbert.capture.frames import FrameBatch
from etbert.packets.addresses import format_address
from etbert.packets.batch import Status
from etbert.packets.decode import decode, status_counts

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
pytestmark = pytest.mark.shared_data
CAPTURES = ["ustc-tfc2016/Facetime.pcap", "ustc-tfc2016/Tinba.pcap"]


def read_with_dpkt(path: Path) -> list[tuple[int, int, bytes]]:
    with path.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        return [(int(ts * 1e9), reader.datalink(), buf) for ts, buf in reader]


@pytest.mark.parametrize("name", CAPTURES)
def test_decoder_agrees_with_dpkt(name):
    path = DATA / name
    if not path.exists():
        pytest.skip(f"real capture {path} not present")
    frames = read_with_dpkt(path)
    packets = decode(FrameBatch.from_frames(frames))
    compared = {"ip": 0, "transport": 0, "unparsed": 0}
    for i, (_, linktype, buf) in enumerate(frames):
        assert linktype == dpkt.pcap.DLT_EN10MB
        try:
            ip = dpkt.ethernet.Ethernet(buf).data
        except dpkt.UnpackError:  # dpkt cannot parse it: only check that it is not decoded as a packet
            assert packets.status[i] != Status.OK, i
            compared["unparsed"] += 1
            continue
        if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
            assert packets.status[i] in (Status.NOT_IP, Status.TRUNCATED), i
            continue
        family = socket.AF_INET if isinstance(ip, dpkt.ip.IP) else socket.AF_INET6
        assert packets.ip_version[i] == (4 if family == socket.AF_INET else 6), i
        assert format_address(packets.src[i]) == socket.inet_ntop(family, ip.src), i
        assert format_address(packets.dst[i]) == socket.inet_ntop(family, ip.dst), i
        assert packets.protocol[i] == ip.p, i  # dpkt: the protocol after IPv6 extension headers
        compared["ip"] += 1
        transport = ip.data
        if not isinstance(transport, (dpkt.tcp.TCP, dpkt.udp.UDP)):
            assert packets.status[i] != Status.OK or packets.fragment[i], i
            continue
        assert packets.status[i] == Status.OK, i
        assert (packets.sport[i], packets.dport[i]) == (transport.sport, transport.dport), i
        is_tcp = isinstance(transport, dpkt.tcp.TCP)
        assert packets.tcp_flags[i] == (transport.flags if is_tcp else 0), i
        frame = packets.frames.frame(i)
        end = packets.l3_offset[i] + packets.ip_len[i]
        assert frame[packets.payload_offset[i] : end] == bytes(transport.data), i
        compared["transport"] += 1
    counts = status_counts(packets)
    print(name, compared, counts)
    assert sum(counts.values()) == len(frames)
    assert compared["transport"] > 0.9 * len(frames), (compared, counts)
    assert np.count_nonzero(packets.status == Status.OK) == compared["transport"]
