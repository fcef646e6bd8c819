"""Score a trained run on a split, whole flows or only their first n packets (early identification)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from etbert.dataset.early import SOURCE_COLUMNS, first_packets
from etbert.dataset.layout import DatasetError
from etbert.evaluation.metrics import HEADLINE, classification_metrics
from etbert.evaluation.runs import Run, RunError, early_path, manifest_sha256, metrics_path, open_run, write_json
from etbert.evaluation.train import labelled_flows
from etbert.models.base import FlowModel
from etbert.models.registry import load_model


def evaluate_run(run_path: Path, split: str = "test", packets: int | None = None) -> dict:
    """Metrics of the run's model on ``split``; written to the run as metrics[-split][-firstN].json."""
    run = open_run(run_path)
    model = load_model(run.model_dir)
    flows = _split_flows(run, model, split)
    metrics = _score(run, model, flows, split, packets)
    write_json(metrics_path(run.path, split, packets), metrics)
    return metrics


def early_curve(run_path: Path, split: str = "test", max_packets: int | None = None) -> dict:
    """Headline metrics using only each flow's first n packets, n = 1 .. K (the dataset's packets per flow)."""
    run = open_run(run_path)
    model = load_model(run.model_dir)
    flows = _split_flows(run, model, split)
    limit = max_packets or run.info["dataset"].get("max_packets") or 10
    points = []
    for n in range(1, limit + 1):
        metrics = _score(run, model, flows, split, n)
        points.append({"packets": n, **{key: metrics[key] for key in HEADLINE}})
    curve = {**_protocol(run, split), "points": points}
    write_json(early_path(run.path, split), curve)
    return curve


def _split_flows(run: Run, model: FlowModel, split: str):
    dataset = run.dataset
    try:
        current = manifest_sha256(dataset)
    except FileNotFoundError:
        raise RunError(f"the dataset of {run.path} ({dataset}) is missing") from None
    if current != run.info["dataset"]["manifest_sha256"]:
        raise RunError(f"the dataset {dataset} changed since {run.path} was trained (manifest differs); "
                       "train again on the current dataset")
    try:
        columns = None if model.columns is None else (*model.columns, *SOURCE_COLUMNS)  # for first_packets
        flows = labelled_flows(dataset, split, columns)
    except DatasetError as error:
        raise RunError(str(error)) from error
    if flows.num_rows == 0:
        raise RunError(f"the {split} split of {dataset} has no labelled flows")
    return flows


def _score(run: Run, model: FlowModel, flows, split: str, packets: int | None) -> dict:
    if packets is not None:
        flows = first_packets(flows, packets)
    probabilities = model.predict_proba(flows)
    predicted = np.array(model.classes_, dtype=object)[probabilities.argmax(axis=1)]
    metrics = classification_metrics(flows.column("label").to_pylist(), predicted, model.classes_)
    packet_level = model.packet_predictions(flows)
    if packet_level is not None:
        truth, packet_probabilities = packet_level
        classes = np.array(model.classes_, dtype=object)
        metrics["packet_level"] = classification_metrics(classes[truth], classes[packet_probabilities.argmax(axis=1)],
                                                         model.classes_)
    return {**metrics, **_protocol(run, split), "packets": packets}


def _protocol(run: Run, split: str) -> dict:
    """The evaluation protocol printed next to every number."""
    dataset = run.info["dataset"]
    return {"run": str(run.path), "model": run.info["model"], "split": split, "split_type": dataset["split_type"],
            "anonymize": dataset["anonymize"], "dataset": dataset.get("name", "")}
