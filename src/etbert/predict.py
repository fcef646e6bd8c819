"""Per-flow predictions for captures, with the run's own preparation settings.

A capture is metered and anonymised exactly as the run's dataset was (same packets per flow, byte cap,
timeouts and policy), then classified batch by batch as the meter finishes flows: memory stays bounded
by the active flows, whatever the capture size.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from etbert.capture.frames import CaptureReport
from etbert.capture.reader import iter_capture_files
from etbert.dataset.labels import capture_name
from etbert.dataset.prepare import anonymized_packets, capture_seed, metered_flows
from etbert.evaluation.runs import RunError, open_run
from etbert.flows.meter import FlowMeter, MeterConfig
from etbert.models.base import FlowModel
from etbert.models.registry import load_model

TOP = 3
FIELDS = ("capture", "protocol", "client_ip", "client_port", "server_ip", "server_port", "start_time", "packets",
          "predicted", "probability", "top3")


@dataclass
class PredictSummary:
    flows: int = 0
    captures: int = 0
    problems: list[str] = field(default_factory=list)  # one line per bad or empty file


def predict_captures(run_path: Path, inputs: list[Path], output: Path,
                     on_capture: Callable[[str], None] | None = None) -> PredictSummary:
    """Write one prediction per flow of every capture under ``inputs`` to ``output`` (.jsonl or .csv)."""
    run = open_run(run_path)
    model = load_model(run.model_dir)
    meter_config, policy, seed = _preparation(run.info)
    writer = _writer(Path(output))
    summary = PredictSummary()
    try:
        for root in inputs:
            for path in iter_capture_files(Path(root)):
                name = capture_name(path, Path(root)) if Path(root).is_dir() else path.name
                if on_capture:
                    on_capture(name)
                report = CaptureReport(path=name)
                flows_before = summary.flows
                for rows in _capture_predictions(path, name, report, model, meter_config, policy, seed):
                    writer.write(rows)
                    summary.flows += len(rows)
                if not report.is_capture:
                    summary.problems.append(f"{name}: not a capture file")
                    continue
                summary.captures += 1
                summary.problems.extend(f"{name}: {problem}" for problem in report.problems)
                if summary.flows == flows_before:
                    summary.problems.append(f"{name}: no TCP/UDP flows")
    finally:
        writer.close()
    return summary


def _preparation(info: dict) -> tuple[MeterConfig, str, int]:
    """Meter settings, anonymisation policy and seed the run's dataset was prepared with."""
    parameters = info["dataset"]["parameters"]
    return MeterConfig(**parameters["meter"]), parameters["anonymize"], int(parameters["seed"])


def _capture_predictions(path: Path, name: str, report: CaptureReport, model: FlowModel, meter_config: MeterConfig,
                         policy: str, seed: int) -> Iterator[list[dict]]:
    meter = FlowMeter(meter_config, capture=name)
    for flows in metered_flows(path, report, meter):
        table = pa.Table.from_batches([flows])
        table = table.set_column(table.schema.get_field_index("pkt_bytes"), "pkt_bytes",
                                 anonymized_packets(flows, policy, capture_seed(seed, name)))
        yield _rows(table, model.predict_proba(table), model.classes_)


def _rows(flows: pa.Table, probabilities: np.ndarray, classes: list[str]) -> list[dict]:
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :TOP]
    columns = {name: flows.column(name).to_pylist() for name in FIELDS[:7]}
    packets = (flows.column("fwd_packets").to_numpy() + flows.column("bwd_packets").to_numpy()).tolist()
    rows = []
    for i in range(flows.num_rows):
        top = [[classes[j], round(float(probabilities[i, j]), 6)] for j in order[i]]
        rows.append({**{name: columns[name][i] for name in columns}, "packets": packets[i],
                     "predicted": top[0][0], "probability": top[0][1], "top3": top})
    return rows


class _writer:
    """JSON lines or CSV by the output's extension (CSV top3 as 'class:prob;class:prob;...')."""

    def __init__(self, path: Path):
        if path.suffix.lower() not in (".jsonl", ".csv"):
            raise RunError(f"output {path} must end in .jsonl or .csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.csv = path.suffix.lower() == ".csv"
        self.file = path.open("w", newline="")
        self.table = csv.DictWriter(self.file, FIELDS) if self.csv else None
        if self.table:
            self.table.writeheader()

    def write(self, rows: list[dict]) -> None:
        for row in rows:
            if self.table:
                self.table.writerow({**row, "top3": ";".join(f"{c}:{p}" for c, p in row["top3"])})
            else:
                self.file.write(json.dumps(row) + "\n")

    def close(self) -> None:
        self.file.close()
