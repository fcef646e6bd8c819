"""tcpdump on the client's side of the link, and a summary of what a capture holds.

``--immediate-mode -U -B 32768`` matter: without them tcpdump buffers, so the last flows before it
stops are lost and bursts of a large transfer overflow the kernel buffer.
"""

from __future__ import annotations

import signal
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from etbert.lab.cleanup import Cleanup
from etbert.lab.netns import LabSetupError
from etbert.lab.processes import Daemon, start_daemon, stop_process
from etbert.protocols import ethernet, ipv4, linktypes

CAPTURE_FILTER = "ip"  # IPv4 only: the lab link carries nothing else worth a label (ARP is link chatter)
PCAP_MAGIC_US = 0xA1B2C3D4
IPPROTO_TCP, IPPROTO_UDP = 6, 17


@dataclass
class Capture:
    daemon: Daemon
    path: Path


@dataclass(frozen=True)
class CaptureSummary:
    packets: int
    bytes: int
    flows: int  # distinct bidirectional TCP/UDP 5-tuples
    max_ip_length: int
    dropped: int  # packets tcpdump reported dropped by the kernel


def start_capture(cleanup: Cleanup, namespace: str, device: str, path: Path, log_dir: Path) -> Capture:
    argv = ["tcpdump", "-i", device, "-w", str(path), "-n", "-s", "0", "-Z", "root", "--immediate-mode", "-U", "-B", "32768", CAPTURE_FILTER]
    daemon = start_daemon(cleanup, namespace, argv, f"tcpdump-{path.stem}", log_dir)
    deadline = time.monotonic() + 10
    while "listening on" not in daemon.log.read_text(errors="replace"):
        if daemon.process.poll() is not None or time.monotonic() > deadline:
            raise LabSetupError(f"tcpdump did not start: {daemon.log_tail()}")
        time.sleep(0.01)
    return Capture(daemon, path)


def stop_capture(capture: Capture) -> int:
    """Stop tcpdump cleanly (SIGINT flushes the file); returns how many packets the kernel dropped."""
    stop_process(capture.daemon.process, signal.SIGINT)
    for line in capture.daemon.log.read_text(errors="replace").splitlines():
        if line.endswith("packets dropped by kernel"):
            return int(line.split()[0])
    return 0


def pcap_records(path: Path) -> Iterator[bytes]:
    """Frames of a classic little-endian pcap as tcpdump writes it on Linux (Ethernet link type)."""
    with path.open("rb") as stream:
        header = stream.read(24)
        if len(header) < 24 or struct.unpack("<I", header[:4])[0] != PCAP_MAGIC_US:
            raise ValueError(f"{path}: not a little-endian microsecond pcap")
        if struct.unpack("<I", header[20:24])[0] != linktypes.ETHERNET:
            raise ValueError(f"{path}: link type is not Ethernet")
        while record := stream.read(16):
            caplen = struct.unpack("<I", record[8:12])[0]
            yield stream.read(caplen)


def summarise(path: Path, dropped: int = 0) -> CaptureSummary:
    packets = total = max_ip = 0
    flows = set()
    for frame in pcap_records(path):
        packets += 1
        total += len(frame)
        if struct.unpack_from("!H", frame, ethernet.ETHERTYPE)[0] != ethernet.ETHERTYPE_IPV4:
            continue
        ip = frame[ethernet.HEADER_LEN :]
        max_ip = max(max_ip, struct.unpack_from("!H", ip, ipv4.TOTAL_LENGTH)[0])
        protocol = ip[ipv4.PROTOCOL]
        if protocol not in (IPPROTO_TCP, IPPROTO_UDP):
            continue
        header_len = (ip[ipv4.VERSION_IHL] & 0x0F) * 4
        src_port, dst_port = struct.unpack_from("!HH", ip, header_len)
        ends = sorted([(ip[ipv4.SRC], src_port), (ip[ipv4.DST], dst_port)])
        flows.add((protocol, *ends))
    return CaptureSummary(packets=packets, bytes=total, flows=len(flows), max_ip_length=max_ip, dropped=dropped)
