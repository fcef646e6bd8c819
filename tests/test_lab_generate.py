"""Real generation between network namespaces (needs root, iproute2, tcpdump and the class software)."""

import os
import subprocess
import tempfile
from pathlib import Path

import dpkt
import pytest

from etbert.lab.classes import ALL_CLASSES
from etbert.lab.classes.web import TlsDownload
from etbert.lab.generate import GenerateOptions, generate
from etbert.lab.netns import host_unavailable

pytestmark = pytest.mark.root


def lab_unavailable() -> str | None:
    reason = host_unavailable()
    if reason:
        return reason
    probe = f"etbprobe{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "cannot create network namespaces here"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return next((f"{name}: {why}" for name in ("tls-download", "shadowsocks") if (why := ALL_CLASSES[name].unavailable())), None)


@pytest.fixture(scope="module")
def lab_ready():
    reason = lab_unavailable()
    if reason:
        pytest.skip(f"traffic lab cannot run here: {reason}")


def lab_leftovers() -> tuple[set[str], set[str]]:
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    ours = {line.split()[0] for line in namespaces.splitlines() if line.startswith(f"etb{os.getpid()}")}
    scratch = {p.name for p in Path(tempfile.gettempdir()).glob("etbert-lab-*")}
    return ours, scratch


def connections(path: Path) -> set[tuple]:
    found = set()
    with path.open("rb") as stream:
        for _, frame in dpkt.pcap.Reader(stream):
            ip = dpkt.ethernet.Ethernet(frame).data
            assert isinstance(ip, dpkt.ip.IP) and ip.len <= 1500
            if isinstance(ip.data, (dpkt.tcp.TCP, dpkt.udp.UDP)):
                found.add((ip.p, *sorted([(ip.src, ip.data.sport), (ip.dst, ip.data.dport)])))
    return found


def test_two_classes_are_generated_captured_and_cleaned_up(lab_ready, tmp_path):
    _, scratch_before = lab_leftovers()
    options = GenerateOptions(tmp_path / "out", ("tls-download", "shadowsocks"), flows_per_class=4, seed=11, size_scale=0.05)
    progress = []
    manifest = generate(options, lambda name, done, total: progress.append((name, done, total)))
    assert [c.name for c in manifest.classes] == ["tls-download", "shadowsocks"]
    assert ("tls-download", 4, 4) in progress and ("shadowsocks", 4, 4) in progress
    for record in manifest.classes:
        assert record.flows_failed == 0, [f.error for f in record.flows]
        capture = options.out_dir / record.capture
        assert capture.parent.name == record.name
        found = connections(capture)
        assert len(found) == record.connections >= 4
        assert all(p == dpkt.ip.IP_PROTO_TCP for p, *_ in found)
        assert record.max_ip_length <= 1500 and record.dropped == 0
    # curl wrote TLS secrets for the HTTPS downloads: ground truth beside the capture
    secrets = (options.out_dir / manifest.classes[0].keylog).read_text()
    assert secrets.count("CLIENT_RANDOM") + secrets.count("CLIENT_TRAFFIC_SECRET_0") >= 4  # TLS 1.2 or 1.3 sessions
    namespaces, scratch = lab_leftovers()
    assert not namespaces and scratch <= scratch_before


class BreaksMidway(TlsDownload):
    """A class whose third flow hits an unexpected error (not a client failure)."""

    name = "breaks-midway"

    def run_flow(self, lab, flow):
        if flow.index == 2:
            raise RuntimeError("unexpected failure in the middle of a class")
        super().run_flow(lab, flow)


def test_a_failure_mid_class_removes_namespaces_processes_and_the_half_class(lab_ready, tmp_path, monkeypatch):
    monkeypatch.setitem(ALL_CLASSES, BreaksMidway.name, BreaksMidway())
    _, scratch_before = lab_leftovers()
    nginx_before = set(subprocess.run(["pgrep", "-x", "nginx"], capture_output=True, text=True).stdout.split())
    options = GenerateOptions(tmp_path / "out", ("shadowsocks", BreaksMidway.name), flows_per_class=4, seed=1, size_scale=0.05, parallel=1)
    with pytest.raises(RuntimeError, match="unexpected failure"):
        generate(options)
    namespaces, scratch = lab_leftovers()
    assert not namespaces and scratch <= scratch_before
    assert set(subprocess.run(["pgrep", "-x", "nginx"], capture_output=True, text=True).stdout.split()) <= nginx_before
    assert sorted(p.name for p in options.out_dir.iterdir()) == ["manifest.json", "shadowsocks"]  # finished class kept
