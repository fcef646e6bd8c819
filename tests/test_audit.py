"""`etbert audit` flags a dataset whose class is written in an identity field, and passes a clean one."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.utils import wrpcap
from typer.testing import CliRunner

from etbert.cli import app
from etbert.dataset.prepare import PrepareConfig, prepare
from etbert.evaluation.audit import audit_dataset

FLOWS_PER_CLASS = 60


def _write_corpus(root: Path, leaky: bool) -> Path:
    """Two classes of UDP flows. Leaky: identical behaviour, the class is the server port.
    Clean: ports drawn at random for both; the classes differ in their packet sizes."""
    rng = random.Random(7)
    for label, port, size in (("alpha", 1111, 200), ("beta", 2222, 900)):
        folder = root / label
        folder.mkdir(parents=True)
        packets = []
        for flow in range(FLOWS_PER_CLASS):
            client = f"10.{rng.randrange(1, 250)}.{rng.randrange(1, 250)}.{rng.randrange(1, 250)}"
            server = f"10.{rng.randrange(1, 250)}.{rng.randrange(1, 250)}.{rng.randrange(1, 250)}"
            sport = rng.randrange(30000, 60000)
            dport = port if leaky else rng.randrange(1024, 60000)
            start = 1000.0 + flow * 5
            for i in range(6):
                length = rng.randrange(100, 1000) if leaky else size + rng.randrange(0, 20)
                outbound = i % 2 == 0
                src, dst, sp, dp = (client, server, sport, dport) if outbound else (server, client, dport, sport)
                packet = IP(src=src, dst=dst) / UDP(sport=sp, dport=dp) / rng.randbytes(length)
                packet.time = start + i * 0.01
                packets.append(packet)
        wrpcap(str(folder / f"{label}.pcap"), packets)
    dataset = root.parent / f"{root.name}-dataset"
    prepare(root, dataset, PrepareConfig())
    return dataset


@pytest.fixture(scope="module")
def leaky(tmp_path_factory) -> Path:
    return _write_corpus(tmp_path_factory.mktemp("audit") / "leaky", leaky=True)


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    return _write_corpus(tmp_path_factory.mktemp("audit") / "clean", leaky=False)


def test_class_in_the_port_is_flagged(leaky):
    report = audit_dataset(leaky)
    identity = next(check for check in report.checks if check.name == "identity fields")
    assert identity.flagged and report.flagged
    assert identity.leaky_f1 > 0.95 and identity.honest_f1 < 0.8
    assert "port" in identity.note


def test_clean_dataset_is_not_flagged(clean):
    report = audit_dataset(clean)
    assert not report.flagged, report.to_dict()
    assert all(check.honest_f1 > 0.9 for check in report.checks)


def test_audit_cli_prints_the_gap_and_writes_json(leaky, tmp_path):
    out = tmp_path / "audit.json"
    result = CliRunner().invoke(app, ["audit", str(leaky), "-o", str(out)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "SHORTCUT" in result.output and "strict" in result.output
    saved = json.loads(out.read_text())
    assert saved["flagged"] and {c["name"] for c in saved["checks"]} == {"identity fields", "packet split"}
    missing = CliRunner().invoke(app, ["audit", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not a dataset folder" in missing.output
