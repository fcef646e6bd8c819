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


def test_two_classes_are_generated_in_several_captures_and_cleaned_up(lab_ready, tmp_path):
    _, scratch_before = lab_leftovers()
    options = GenerateOptions(
        tmp_path / "out", ("tls-download", "shadowsocks"), flows_per_class=6, captures_per_class=3, seed=11, size_scale=0.05
    )
    progress = []
    manifest = generate(options, lambda name, done, total: progress.append((name, done, total)))
    assert [c.name for c in manifest.classes] == ["tls-download", "shadowsocks"]
    assert [done for name, done, _ in progress if name == "tls-download"] == [1, 2, 3, 4, 5, 6]  # counted across captures
    assert ("shadowsocks", 6, 6) in progress
    for record in manifest.classes:
        assert record.flows_failed == 0, [f.error for f in record.flows]
        paths = sorted(p.name for p in (options.out_dir / record.name).glob("*.pcap"))
        assert paths == [f"{record.name}-{i}.pcap" for i in (1, 2, 3)]
        assert [(c.path, c.first_flow, c.flows) for c in record.captures] == [(f"{record.name}/{name}", 2 * i, 2) for i, name in enumerate(paths)]
        seen = set()
        for capture in record.captures:
            found = connections(options.out_dir / capture.path)
            assert len(found) == capture.connections >= 2  # each session holds its own share of flows
            assert not found & seen  # no connection spills into the next session
            seen |= found
            assert all(p == dpkt.ip.IP_PROTO_TCP for p, *_ in found)
            assert capture.max_ip_length <= 1500 and capture.dropped == 0
    # curl wrote TLS secrets for the HTTPS downloads of every session: ground truth beside the captures
    secrets = (options.out_dir / manifest.classes[0].keylog).read_text()
    assert secrets.count("CLIENT_RANDOM") + secrets.count("CLIENT_TRAFFIC_SECRET_0") >= 6  # TLS 1.2 or 1.3 sessions
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
    options = GenerateOptions(
        tmp_path / "out", ("shadowsocks", BreaksMidway.name), flows_per_class=4, captures_per_class=2, seed=1, size_scale=0.05, parallel=1
    )  # flow 2 opens the second capture: the first, complete, goes with its unfinished class
    with pytest.raises(RuntimeError, match="unexpected failure"):
        generate(options)
    namespaces, scratch = lab_leftovers()
    assert not namespaces and scratch <= scratch_before
    assert set(subprocess.run(["pgrep", "-x", "nginx"], capture_output=True, text=True).stdout.split()) <= nginx_before
    assert sorted(p.name for p in options.out_dir.iterdir()) == ["manifest.json", "shadowsocks"]  # finished class kept
