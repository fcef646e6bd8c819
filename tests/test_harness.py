"""The training and evaluation harness: runs, metrics, early identification, prediction, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import dpkt
import numpy as np
import pyarrow as pa
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import CookedLinux
from scapy.utils import PcapNgWriter
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from typer.testing import CliRunner

from etbert.cli import app
from etbert.dataset.early import first_packets
from etbert.dataset.layout import read_flows
from etbert.evaluation.evaluate import early_curve, evaluate_run
from etbert.evaluation.metrics import classification_metrics
from etbert.evaluation.runs import RUN_FILE, RunError, open_run
from etbert.evaluation.train import train_run
from etbert.models.base import ModelError, config_from_dict
from etbert.models.registry import create_model, load_model
from etbert.predict import predict_captures

runner = CliRunner()


# ----- metrics ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("y_true, y_pred", [
    (["a", "a", "b", "c", "c", "c"], ["a", "b", "b", "c", "a", "c"]),
    (["x", "y", "y", "y", "z"], ["x", "x", "x", "y", "y"]),  # z never predicted: zero division
    (["a"] * 5 + ["b"] * 5, ["a"] * 10),
])
def test_metrics_agree_with_scikit_learn(y_true, y_pred):
    classes = sorted(set(y_true))
    metrics = classification_metrics(y_true, y_pred, classes)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    for ours, theirs in (("macro_precision", precision_score), ("macro_recall", recall_score), ("macro_f1", f1_score)):
        assert metrics[ours] == pytest.approx(theirs(y_true, y_pred, labels=classes, average="macro", zero_division=0))
    assert metrics["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted", zero_division=0))
    matrix = np.array(metrics["confusion_matrix"]["matrix"])
    assert matrix.sum() == len(y_true) and np.trace(matrix) == sum(t == p for t, p in zip(y_true, y_pred))


def test_binary_metrics_by_hand():
    # background = negative. tp: 2, fn: 1, tn: 3, fp: 1
    truth = ["app", "app", "app", "background", "background", "background", "background"]
    guess = ["app", "app", "background", "background", "background", "background", "app"]
    binary = classification_metrics(truth, guess, ["app", "background"])["binary"]
    assert binary["positive"] == "app" and binary["negative"] == "background"
    assert binary["recall"] == pytest.approx(2 / 3)
    assert binary["precision"] == pytest.approx(2 / 3)
    assert binary["specificity"] == pytest.approx(3 / 4)
    assert binary["npv"] == pytest.approx(3 / 4)
    assert "binary" not in classification_metrics(["a", "b", "c"], ["a", "b", "c"], ["a", "b", "c"])


def test_macro_averages_only_classes_present_in_the_split():
    metrics = classification_metrics(["a", "a"], ["a", "a"], ["a", "b"])
    assert metrics["macro_f1"] == 1.0 and metrics["per_class"]["b"]["support"] == 0


# ----- settings -----------------------------------------------------------------------------------------


def test_settings_are_converted_and_unknown_keys_refused():
    from etbert.models.majority import MajorityClass
    import dataclasses

    @dataclasses.dataclass
    class Config:
        trees: int = 10
        rate: float = 0.1
        balanced: bool = True
        layers: tuple[int, ...] = (4, 4)
        path: str | None = None

    config = config_from_dict(Config, {"trees": "30", "rate": "0.5", "balanced": "false", "layers": "2,3",
                                       "path": "none"})
    assert config == Config(30, 0.5, False, (2, 3), None)
    with pytest.raises(ModelError, match="unknown setting"):
        config_from_dict(Config, {"tres": 3})
    with pytest.raises(ModelError, match="trees"):
        config_from_dict(Config, {"trees": "many"})
    with pytest.raises(ModelError, match="unknown model"):
        create_model("no-such-model")
    assert MajorityClass.name == "majority"


# ----- early identification view ------------------------------------------------------------------------


def test_first_packets_recomputes_what_the_meter_computed(lab_tables):
    flows = lab_tables["train"]
    total = np.array(flows.column("fwd_packets")) + np.array(flows.column("bwd_packets"))
    short = flows.filter(pa.array(total <= 10))
    assert short.num_rows > 20
    again = first_packets(short, 10)
    for name in short.column_names:
        if name == "end_reason":
            continue
        before, after = short.column(name).to_pylist(), again.column(name).to_pylist()
        if isinstance(before[0], float):
            np.testing.assert_allclose(before, after, atol=1e-9, err_msg=name)
        else:
            assert before == after, name


def test_first_packets_sees_nothing_beyond_n(lab_tables):
    flows = lab_tables["train"]
    two = first_packets(flows, 2)
    assert max(len(x) for x in two.column("pkt_length").to_pylist()) == 2
    packets = np.array(two.column("fwd_packets")) + np.array(two.column("bwd_packets"))
    assert packets.max() == 2 and packets.min() >= 1
    assert set(two.column("end_reason").to_pylist()) == {"partial"}
    lengths = two.column("pkt_length").to_pylist()
    assert (np.array(two.column("fwd_bytes")) + np.array(two.column("bwd_bytes"))).tolist() == [sum(x) for x in lengths]
    with pytest.raises(ValueError):
        first_packets(flows, 0)


# ----- runs -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def majority_run(lab_dataset, tmp_path_factory) -> Path:
    return train_run(lab_dataset, "majority", tmp_path_factory.mktemp("runs") / "majority")


def test_a_run_records_its_protocol_and_evaluates(majority_run, lab_dataset):
    run = open_run(majority_run)
    assert run.info["dataset"]["split_type"] == "flow" and run.info["dataset"]["anonymize"] == "strict"
    assert run.info["versions"]["etbert"] and run.info["seed"] == 0
    metrics = evaluate_run(majority_run, "test")
    saved = json.loads((majority_run / "metrics.json").read_text())
    for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1", "per_class", "split"):
        assert key in saved
    assert saved["split"] == "test" and saved["split_type"] == "flow" and saved["anonymize"] == "strict"
    test = read_flows(lab_dataset, split="test")
    labels = test.column("label").to_pylist()
    majority = max(set(labels), key=labels.count)
    assert metrics["accuracy"] == pytest.approx(labels.count(majority) / len(labels), abs=0.02)
    assert (majority_run / "train.log").read_text().count("trained in") == 1


def test_early_curve_has_a_point_per_packet(majority_run):
    curve = early_curve(majority_run, "test")
    assert [p["packets"] for p in curve["points"]] == list(range(1, 11))
    assert json.loads((majority_run / "early-test.json").read_text())["points"] == curve["points"]


def test_saved_model_loads_with_identical_predictions(majority_run, lab_tables):
    model = load_model(majority_run / "model")
    again = load_model(majority_run / "model")
    np.testing.assert_array_equal(model.predict_proba(lab_tables["test"]), again.predict_proba(lab_tables["test"]))


def test_runs_of_another_format_and_missing_datasets_are_refused(majority_run, tmp_path):
    import shutil

    old = tmp_path / "old-run"
    shutil.copytree(majority_run, old)
    info = json.loads((old / RUN_FILE).read_text())
    info["format_version"] = 0
    (old / RUN_FILE).write_text(json.dumps(info))
    with pytest.raises(RunError, match="format 0"):
        evaluate_run(old)
    moved = tmp_path / "moved-run"
    shutil.copytree(majority_run, moved)
    info = json.loads((moved / RUN_FILE).read_text())
    info["dataset"]["path"] = str(tmp_path / "gone")
    (moved / RUN_FILE).write_text(json.dumps(info))
    with pytest.raises(RunError, match="missing"):
        evaluate_run(moved)
    with pytest.raises(RunError, match="not a run directory"):
        evaluate_run(tmp_path)


def test_train_refuses_to_overwrite_and_missing_datasets(lab_dataset, majority_run, tmp_path):
    result = runner.invoke(app, ["train", str(lab_dataset), "-m", "majority", "-o", str(majority_run)])
    assert result.exit_code == 2 and "--overwrite" in result.output
    result = runner.invoke(app, ["train", str(tmp_path / "nothing"), "-m", "majority", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "not a dataset folder" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["train", str(lab_dataset), "-m", "nope", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "unknown model" in result.output
    result = runner.invoke(app, ["train", str(lab_dataset), "-m", "majority", "-o", str(tmp_path / "r"),
                                 "--set", "depth=3"])
    assert result.exit_code == 2 and "unknown setting" in result.output


def test_cli_train_evaluate_early(lab_dataset, tmp_path):
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(lab_dataset), "-m", "majority", "-o", str(run)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "split by" in result.output and "flow" in result.output and "strict" in result.output
    result = runner.invoke(app, ["evaluate", str(run), "--split", "val", "--packets", "3"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert (run / "metrics-val-first3.json").exists()
    result = runner.invoke(app, ["evaluate", str(run), "--early"], terminal_width=200)
    assert result.exit_code == 0 and (run / "early-test.json").exists()


# ----- prediction -----------------------------------------------------------------------------------------


def _new_layout_captures(folder: Path) -> None:
    """Traffic in link layers the (Ethernet) lab corpus never had: raw IP pcap and Linux SLL in pcapng."""
    packets = []
    for i, (src, dst, sport, dport, size) in enumerate([("10.9.0.1", "10.9.0.2", 40000, 443, 300),
                                                        ("10.9.0.2", "10.9.0.1", 443, 40000, 1200),
                                                        ("10.9.0.1", "10.9.0.2", 40000, 443, 80)]):
        packets.append((10.0 + i * 0.01, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="PA") / bytes(size)))
    packets.append((11.0, IP(src="10.9.0.1", dst="10.9.0.9") / UDP(sport=5000, dport=4433) / bytes(900)))
    with open(folder / "raw.pcap", "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=101)
        for t, p in packets:
            writer.writepkt(bytes(p), t)
    writer = PcapNgWriter(str(folder / "sll.pcapng"))
    for t, p in packets:
        frame = CookedLinux(proto=0x0800) / p
        frame.time = t
        writer.write(frame)
    writer.close()


def test_predict_on_captures_of_an_unseen_layout(majority_run, tmp_path):
    _new_layout_captures(tmp_path)
    summary = predict_captures(majority_run, [tmp_path / "raw.pcap", tmp_path / "sll.pcapng"], tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert summary.flows == len(rows) == 4 and not summary.problems
    tcp = [r for r in rows if r["protocol"] == 6]
    assert {(r["client_ip"], r["client_port"], r["server_ip"], r["server_port"]) for r in tcp} == {
        ("10.9.0.1", 40000, "10.9.0.2", 443)}
    for row in rows:
        assert row["predicted"] == row["top3"][0][0] and row["probability"] == row["top3"][0][1]
        assert len(row["top3"]) == 3 and row["start_time"] >= 10.0
    csv_out = tmp_path / "out.csv"
    predict_captures(majority_run, [tmp_path], csv_out)
    assert csv_out.read_text().splitlines()[0].startswith("capture,protocol,client_ip")


def test_predict_errors_are_one_line(majority_run, tmp_path):
    empty = tmp_path / "empty.pcap"
    with open(empty, "wb") as handle:
        dpkt.pcap.Writer(handle, linktype=1)
    result = runner.invoke(app, ["predict", str(majority_run), str(empty), "-o", str(tmp_path / "p.jsonl")])
    assert result.exit_code == 2 and "no flows to classify" in result.output and "Traceback" not in result.output
    assert "no TCP/UDP flows" in result.output
    result = runner.invoke(app, ["predict", str(majority_run), str(tmp_path / "none.pcap"), "-o", str(tmp_path / "p.jsonl")])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["predict", str(majority_run), str(empty), "-o", str(tmp_path / "p.txt")])
    assert result.exit_code == 2 and ".jsonl or .csv" in result.output


def test_compare_prints_the_protocol_beside_the_numbers(majority_run, lab_dataset, tmp_path):
    evaluate_run(majority_run)
    other = train_run(lab_dataset, "majority", tmp_path / "second", seed=1)
    result = runner.invoke(app, ["compare", str(majority_run), str(other)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "flow" in result.output and "strict" in result.output and "0.1714" in result.output
    assert "not evaluated" in result.output  # the second run was never evaluated
    result = runner.invoke(app, ["compare", str(tmp_path)])
    assert result.exit_code == 2 and "not a run directory" in result.output
