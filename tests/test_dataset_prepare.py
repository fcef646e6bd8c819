"""`prepare` end to end: real captures written with scapy, the real reader, decoder, meter and writer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from etbert.capture.frames import CaptureReport
from etbert.capture.reader import read_frames
from etbert.dataset.anonymize import anonymize_batch, mask_identity_batch
from etbert.dataset.digest import SEEDS
from etbert.dataset.layout import DatasetError, flow_files, read_flows, read_manifest
from etbert.dataset import prepare as prepare_module
from etbert.dataset.labels import load_label_source
from etbert.dataset.prepare import (PrepareConfig, PrepareError, _contiguous_groups, anonymize_and_key, flow_ids,
                                    meter_capture, prepare, warm_up_capture)
from etbert.flows.meter import FlowMeter, MeterConfig
from etbert.packets.decode import decode

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def tcp_flow(client, server, sport, t0, payloads=(300, 1200, 80)):
    packets = [
        Ether() / IP(src=client, dst=server) / TCP(sport=sport, dport=443, flags="S"),
        Ether() / IP(src=server, dst=client) / TCP(sport=443, dport=sport, flags="SA"),
    ]
    for i, size in enumerate(payloads):
        a, b, pa_, pb = (client, server, sport, 443) if i % 2 == 0 else (server, client, 443, sport)
        packets.append(Ether() / IP(src=a, dst=b) / TCP(sport=pa_, dport=pb, flags="PA") / (bytes([i + 1]) * size))
    packets.append(Ether() / IP(src=client, dst=server) / TCP(sport=sport, dport=443, flags="R"))
    for i, packet in enumerate(packets):
        packet.time = t0 + i * 0.01
    return packets


def write_class(root: Path, label: str, captures: int, flows: int, payloads) -> None:
    """Captures of one class; payloads(n) gives the sizes of its n-th flow (distinct, so no duplicates)."""
    for c in range(captures):
        packets = []
        for f in range(flows):
            packets += tcp_flow(f"10.{c}.{f}.1", f"10.200.{f}.2", 20000 + f, 1000.0 + c * 100 + f, payloads(c * flows + f))
        (root / label).mkdir(parents=True, exist_ok=True)
        wrpcap(str(root / label / f"{label}-{c}.pcap"), packets)


@pytest.fixture()
def corpus(tmp_path) -> Path:
    root = tmp_path / "captures"
    write_class(root, "web", captures=3, flows=10, payloads=lambda f: (100 + f, 1300, 90))
    write_class(root, "bulk", captures=3, flows=10, payloads=lambda f: (50 + f, 1400, 1400, 1400))
    (root / "README.txt").write_text("not a capture")
    return root


def test_flow_ids_are_the_capture_and_the_flow_index():
    index = np.array([0, 7, 10, 99, 100, 12_345, 2**63 - 1], dtype=np.int64)
    assert flow_ids("web/a é.pcap", index).to_pylist() == [f"web/a é.pcap#{i}" for i in index]
    assert flow_ids("x.pcap", np.zeros(0, dtype=np.int64)).to_pylist() == []
    with pytest.raises(ValueError):
        flow_ids("x.pcap", np.array([-1]))


def test_folder_layout_gives_labelled_split_dataset(corpus, tmp_path):
    manifest = prepare(corpus, tmp_path / "ds", PrepareConfig())
    table = read_flows(tmp_path / "ds")
    assert table.num_rows == 60
    assert set(table.column("label").to_pylist()) == {"web", "bulk"}
    assert set(table.column("split").to_pylist()) == {"train", "val", "test"}
    assert len(set(table.column("flow_id").to_pylist())) == 60  # one row per flow: no flow in two splits
    assert table.column("flow_id").to_pylist() == [f"{c}#{i}" for c, i in zip(table.column("capture").to_pylist(),
                                                                              table.column("flow_index").to_pylist())]
    assert manifest["anonymize"] == "strict" and manifest["split"] == "flow"
    assert sum(manifest["counts"]["web"].values()) == 30
    assert manifest["not_captures"] == ["README.txt"]
    assert read_manifest(tmp_path / "ds") == json.loads((tmp_path / "ds" / "manifest.json").read_text())
    # strict anonymisation reached the stored bytes: no original address survives in any IP header
    for row in table.select(["client_ip", "server_ip", "pkt_bytes"]).to_pylist():
        originals = {bytes(int(x) for x in row[k].split(".")) for k in ("client_ip", "server_ip")}
        for packet in row["pkt_bytes"]:
            assert packet[12:16] not in originals and packet[16:20] not in originals


def test_capture_split_keeps_each_capture_in_one_split(corpus, tmp_path):
    prepare(corpus, tmp_path / "ds", PrepareConfig(split="capture"))
    table = read_flows(tmp_path / "ds", columns=["capture", "split"]).to_pylist()
    split_of = {}
    for row in table:
        assert split_of.setdefault(row["capture"], row["split"]) == row["split"]
    assert set(split_of.values()) == {"train", "val", "test"}


def test_time_split_tests_on_later_flows(corpus, tmp_path):
    prepare(corpus, tmp_path / "ds", PrepareConfig(split="time"))
    rows = read_flows(tmp_path / "ds", columns=["label", "split", "start_time"]).to_pylist()
    for label in ("web", "bulk"):
        train = [r["start_time"] for r in rows if r["label"] == label and r["split"] == "train"]
        test = [r["start_time"] for r in rows if r["label"] == label and r["split"] == "test"]
        assert max(train) <= min(test)


def test_flows_differing_only_in_identity_fields_are_duplicates(tmp_path):
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    wrpcap(str(root / "a" / "one.pcap"), tcp_flow("10.0.0.1", "10.0.0.2", 1111, 5.0))
    wrpcap(str(root / "a" / "two.pcap"), tcp_flow("192.168.1.1", "172.16.0.9", 2222, 5.0))
    wrpcap(str(root / "a" / "three.pcap"), tcp_flow("10.0.0.1", "10.0.0.2", 1111, 5.0, payloads=(7, 8, 9)))
    manifest = prepare(root, tmp_path / "ds", PrepareConfig())
    assert manifest["duplicates"]["duplicates"] == 1
    assert read_flows(tmp_path / "ds").num_rows == 2


def test_identity_fields_policy_none_keeps_bytes(corpus, tmp_path):
    prepare(corpus, tmp_path / "raw", PrepareConfig(anonymize="none"))
    rows = read_flows(tmp_path / "raw", columns=["client_ip", "pkt_bytes"]).to_pylist()
    for row in rows[:5]:
        client = bytes(int(x) for x in row["client_ip"].split("."))
        assert row["pkt_bytes"][0][12:16] == client
    assert read_manifest(tmp_path / "raw")["anonymize"] == "none"


def test_workers_give_the_same_dataset_in_one_file_each(corpus, tmp_path):
    prepare(corpus, tmp_path / "one", PrepareConfig(workers=1))
    prepare(corpus, tmp_path / "two", PrepareConfig(workers=2))
    assert [Path(f).name for f in flow_files(tmp_path / "one")] == ["part-00000.parquet"]
    assert [Path(f).name for f in flow_files(tmp_path / "two")] == ["part-00000.parquet", "part-00001.parquet"]
    assert read_flows(tmp_path / "one").equals(read_flows(tmp_path / "two"))
    first_file = pq.read_table(flow_files(tmp_path / "two")[0], columns=["capture"]).column("capture").to_pylist()
    assert 0 < len(first_file) < read_flows(tmp_path / "two").num_rows


@pytest.mark.parametrize("sizes, groups", [([5, 5, 5, 5], 2), ([1, 100, 1], 2), ([3], 4), ([0, 0, 7, 1], 3),
                                           ([2, 2, 2, 2, 2], 3), ([], 2), ([4, 4], 1),
                                           ([1, 1, 100], 3)])
def test_flow_files_take_contiguous_runs_of_captures(sizes, groups):
    runs = _contiguous_groups(sizes, groups)
    assert [i for first, last in runs for i in range(first, last)] == list(range(len(sizes)))
    assert len(runs) == min(groups, len(sizes))
    if sizes == [5, 5, 5, 5]:
        assert runs == [(0, 2), (2, 4)]


def test_parts_beyond_the_memory_budget_spill_to_files_and_give_the_same_dataset(corpus, tmp_path, monkeypatch):
    capture = next((corpus / "web").iterdir())
    config = PrepareConfig(labels="folders")
    labels = load_label_source("folders", corpus, [capture])
    held = meter_capture(capture, "web/x.pcap", tmp_path / "held.arrow", config, labels, memory_budget=2**30)
    spilled = meter_capture(capture, "web/x.pcap", tmp_path / "spilled.arrow", config, labels, memory_budget=0)
    assert isinstance(held.part, pa.Table) and not (tmp_path / "held.arrow").exists()
    assert spilled.part == str(tmp_path / "spilled.arrow")
    assert pa.ipc.open_file(spilled.part).read_all().equals(held.part)

    prepare(corpus, tmp_path / "in-memory", PrepareConfig())
    monkeypatch.setattr(prepare_module, "PARTS_IN_MEMORY", 0)
    prepare(corpus, tmp_path / "spilled", PrepareConfig())
    assert read_flows(tmp_path / "in-memory").equals(read_flows(tmp_path / "spilled"))


def test_class_limits(corpus, tmp_path):
    write_class(corpus, "rare", captures=1, flows=2, payloads=lambda f: (5, 5))
    manifest = prepare(corpus, tmp_path / "ds", PrepareConfig(max_per_class=12, min_per_class=5))
    assert set(manifest["counts"]) == {"web", "bulk"}
    assert all(sum(c.values()) == 12 for c in manifest["counts"].values())


def test_flow_label_csv_and_unlabelled_flows(tmp_path):
    capture = tmp_path / "mixed.pcap"
    wrpcap(str(capture), tcp_flow("10.0.0.1", "10.0.0.2", 1111, 1.0) + tcp_flow("10.0.0.3", "10.0.0.2", 2222, 2.0, payloads=(1, 2)))
    labels = tmp_path / "labels.csv"
    labels.write_text("capture,proto,src,sport,dst,dport,label\nmixed.pcap,tcp,10.0.0.2,443,10.0.0.1,1111,chat\n")
    manifest = prepare(capture, tmp_path / "ds", PrepareConfig(labels=str(labels)))
    rows = read_flows(tmp_path / "ds", columns=["client_port", "label", "split"]).to_pylist()
    assert {r["client_port"]: r["label"] for r in rows} == {1111: "chat", 2222: ""}
    assert all(r["split"] for r in rows)
    assert manifest["totals"]["unlabelled_flows"] == 1


def test_damaged_and_empty_captures_keep_good_flows_and_say_why(corpus, tmp_path):
    good = (corpus / "web" / "web-0.pcap").read_bytes()
    (corpus / "web" / "cut.pcap").write_bytes(good[: len(good) - 30])
    (corpus / "web" / "empty.pcap").write_bytes(b"")
    manifest = prepare(corpus, tmp_path / "ds", PrepareConfig())
    cut = next(c for c in manifest["captures"] if c["path"] == "web/cut.pcap")
    assert cut["problems"] and cut["flows"] > 0
    assert any("web/cut.pcap" in p for p in manifest["problems"])
    assert "web/empty.pcap" in manifest["not_captures"]


def test_existing_output_and_missing_input_are_clear_errors(corpus, tmp_path):
    with pytest.raises(PrepareError, match="does not exist"):
        prepare(tmp_path / "nowhere", tmp_path / "ds", PrepareConfig())
    prepare(corpus, tmp_path / "ds", PrepareConfig())
    with pytest.raises(PrepareError, match="already exists"):
        prepare(corpus, tmp_path / "ds", PrepareConfig())
    prepare(corpus, tmp_path / "ds", PrepareConfig(split="time", overwrite=True))
    assert read_manifest(tmp_path / "ds")["split"] == "time"


def test_input_without_any_capture_is_a_clear_error_and_writes_nothing(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.pcap").write_bytes(b"")
    (tmp_path / "in" / "notes.txt").write_text("not a capture")
    with pytest.raises(PrepareError, match=r"no pcap or pcapng capture in .*empty\.pcap: empty file"):
        prepare(tmp_path / "in", tmp_path / "ds", PrepareConfig())
    assert sorted(path.name for path in tmp_path.iterdir()) == ["in"]  # no dataset, no staging left behind


def test_interrupted_prepare_leaves_nothing_that_looks_complete(corpus, tmp_path):
    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, tmp_path / "ds", PrepareConfig(), on_progress=interrupt)
    assert list(tmp_path.iterdir()) == [corpus]
    with pytest.raises(DatasetError):
        read_manifest(tmp_path / "ds")


def test_bundled_lab_corpus_prepares_into_its_classes(tmp_path):
    corpus = REPO / "data" / "lab-default"
    manifest = prepare(corpus, tmp_path / "ds", PrepareConfig())
    classes = json.loads((corpus / "manifest.json").read_text())
    assert len(manifest["counts"]) >= 7
    for label, counts in manifest["counts"].items():
        assert sum(counts.values()) >= 40, label
    assert not manifest["problems"]
    assert classes  # the lab manifest sits beside the captures and is skipped as a non-capture
    assert "manifest.json" in manifest["not_captures"]


@pytest.mark.shared_data
def test_real_ustc_captures(tmp_path):
    folder = SHARED / "ustc-tfc2016"
    if not folder.exists():
        pytest.skip(f"real captures not found at {folder}")
    manifest = prepare(folder, tmp_path / "ds", PrepareConfig(labels="stem"))
    assert manifest["totals"]["frames"] == 28000
    assert set(manifest["counts"]) == {"Facetime", "Tinba"}
    assert manifest["degenerate_classes"]["Facetime"] > 0.9  # per-packet anonymised addresses upstream
    assert "Tinba" not in manifest["degenerate_classes"]
    assert manifest["decoder_status"]["truncated"] == 1  # Tinba's 4-byte frame, counted not dropped silently


def test_duplicate_keys_digest_the_masked_flow(tmp_path):
    """The batch digest equals XXH64 under both seeds (the reference `xxhash` package) per flow over protocol,
    counters and (direction, length, masked bytes)."""
    packets = tcp_flow("10.0.0.1", "10.0.0.2", 1111, 10.0) + tcp_flow("10.0.0.3", "10.0.0.4", 2222, 20.0, (7, 8))
    wrpcap(str(tmp_path / "two.pcap"), packets)
    meter = FlowMeter(MeterConfig(max_packet_bytes=64))
    batches = [meter.add(decode(frames)) for frames in read_frames(tmp_path / "two.pcap", CaptureReport(path="two"))]
    batches = [b for b in [*batches, meter.flush()] if b is not None]
    flows = pa.Table.from_batches(batches).combine_chunks().to_batches()[0]
    masked = mask_identity_batch(flows.column("pkt_bytes"), flows.column("pkt_l4_offset"))
    expected = []
    for row, masked_packets in zip(flows.to_pylist(), masked.to_pylist()):
        content = bytes([row["protocol"]])
        for name in ("fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes"):
            content += row[name].to_bytes(8, "little")
        for direction, packet in zip(row["pkt_direction"], masked_packets):
            content += bytes([direction]) + len(packet).to_bytes(4, "little") + packet
        expected.append(b"".join(xxhash.xxh64_intdigest(content, int(seed)).to_bytes(8, "little") for seed in SEEDS))
    for policy in ("strict", "none"):  # the key does not depend on the policy
        anonymized, keys = anonymize_and_key(flows, policy, seed=3)
        assert flows.num_rows == 2 and keys.tolist() == expected
        assert anonymized.equals(anonymize_batch(flows.column("pkt_bytes"), flows.column("pkt_l4_offset"),
                                                 flows.column("pkt_direction"), policy,
                                                 3 + flows.column("flow_index").to_numpy().astype(np.uint64)))


def test_warm_up_capture_meters_into_a_tcp_and_a_udp_flow(tmp_path):
    # With --workers, the parent meters this capture so that its forked workers inherit the compiled loops.
    path = tmp_path / "warm-up.pcap"
    path.write_bytes(warm_up_capture())
    result = meter_capture(path, path.name, tmp_path / "part.arrow", PrepareConfig(), load_label_source(None, tmp_path,
                                                                                                        [path]))
    assert result.report.problems == [] and result.counters.status == {"ok": 3}
    flows = result.part if isinstance(result.part, pa.Table) else pa.ipc.open_file(result.part).read_all()
    assert flows.select(["protocol", "fwd_packets", "bwd_packets"]).to_pylist() == [
        {"protocol": 6, "fwd_packets": 1, "bwd_packets": 1}, {"protocol": 17, "fwd_packets": 1, "bwd_packets": 0}]
