"""ET-BERT through the harness's command line: pretrain -> train (flow and packet level) -> evaluate -> predict
-> compare, on the bundled corpus with a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from etbert.cli import app
from etbert.evaluation.runs import open_run

runner = CliRunner()
DATA = Path(__file__).resolve().parents[1] / "data" / "lab-default"


def invoke(*arguments: str):
    result = runner.invoke(app, list(arguments), terminal_width=200)
    assert result.exit_code == 0, result.output
    return result


def test_pretrain_train_evaluate_predict_compare(lab_dataset, tmp_path):
    model = tmp_path / "pretrained"
    invoke("pretrain", str(lab_dataset), "-o", str(model), "--config", "tiny", "--max-steps", "4", "--batch-size", "8",
           "--seq-length", "64", "--payload-only", "--device", "cpu")

    flow_run, packet_run, scratch_run = tmp_path / "flow", tmp_path / "packet", tmp_path / "scratch"
    shared = ["--set", "epochs=1", "--set", "seq_length=64", "--set", "device=cpu"]
    result = invoke("train", str(lab_dataset), "-m", "etbert-flow", "-o", str(flow_run), "--set",
                    f"pretrained={model}", *shared)
    assert "strict" in result.output and "flow" in result.output  # the protocol beside the numbers
    invoke("train", str(lab_dataset), "-m", "etbert-packet", "-o", str(packet_run), "--set", f"pretrained={model}",
           "--set", "packets=2", *shared)
    invoke("train", str(lab_dataset), "-m", "etbert-flow", "-o", str(scratch_run), "--set", "size=tiny", *shared)

    info = open_run(flow_run).info
    assert info["model"] == "etbert-flow" and info["settings"]["pretrained"] == str(model)
    metrics = json.loads((flow_run / "metrics.json").read_text())
    assert metrics["split_type"] == "flow" and metrics["anonymize"] == "strict" and metrics["samples"] == 70

    invoke("evaluate", str(packet_run), "--packets", "1")
    assert (packet_run / "metrics-first1.json").exists()
    packet_metrics = json.loads((packet_run / "metrics.json").read_text())
    assert "packet_level" in packet_metrics  # packet-level metrics beside the flow-level ones

    predictions = tmp_path / "predictions.jsonl"
    invoke("predict", str(flow_run), str(DATA / "ssh"), "-o", str(predictions))
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert rows and all(row["predicted"] == row["top3"][0][0] for row in rows)
    assert {row["predicted"] for row in rows} <= set(info["classes"])

    result = invoke("compare", str(flow_run), str(packet_run), str(scratch_run))
    for name in ("etbert-flow", "etbert-packet"):
        assert name in result.output
    assert result.output.count("strict") >= 3
    assert f"{metrics['macro_f1']:.4f}" in result.output  # compare reads the run's own metrics
