"""Train a named model on a prepared dataset's training split and write a run directory."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from etbert.dataset.layout import read_flows, read_manifest
from etbert.dataset.split import SPLITS
from etbert.evaluation.runs import (LOG_FILE, MODEL_DIR, RUN_FILE, RUN_FORMAT_VERSION, RunError, library_versions,
                                    manifest_sha256, now, write_json)
from etbert.models.base import ProgressCallback, config_to_dict
from etbert.models.registry import create_model

HARNESS_COLUMNS = ("label", "split", "flow_id")


def labelled_flows(dataset: Path, split: str, columns: tuple[str, ...] | None) -> pa.Table:
    """The flows of one split that carry a label (unlabelled flows can be neither learnt nor scored)."""
    wanted = None if columns is None else sorted(set(columns) | set(HARNESS_COLUMNS))
    table = read_flows(dataset, columns=wanted, split=split)
    return table.filter(pc.not_equal(table.column("label"), ""))


def dataset_description(dataset: Path, manifest: dict) -> dict:
    """What a run records about its dataset, so its numbers are never shown without their protocol."""
    parameters = manifest.get("parameters", {})
    counts = manifest.get("counts", {})  # class -> split -> flows
    class_counts = {split: {label: per_split.get(split, 0) for label, per_split in sorted(counts.items())}
                    for split in SPLITS}
    return {
        "path": str(Path(dataset).resolve()),
        "name": Path(dataset).resolve().name,
        "manifest_sha256": manifest_sha256(dataset),
        "split_type": parameters.get("split", manifest.get("split", "?")),
        "anonymize": parameters.get("anonymize", manifest.get("anonymize", "?")),
        "max_packets": parameters.get("meter", {}).get("max_packets"),
        "parameters": parameters,  # how captures become flows: `predict` repeats it on new captures
        "classes": sorted(counts),
        "split_sizes": {split: sum(by_class.values()) for split, by_class in class_counts.items()},
        "class_counts": class_counts,
    }


def train_run(dataset: Path, model_name: str, output: Path, settings: dict[str, Any] | None = None, seed: int = 0,
              on_progress: ProgressCallback | None = None, overwrite: bool = False) -> Path:
    """Fit ``model_name`` on the train split (val given to the model for early stopping or tuning).

    The run directory is written only once training succeeded; an existing run is replaced only with
    ``overwrite``.
    """
    dataset, output = Path(dataset), Path(output)
    manifest = read_manifest(dataset)
    model = create_model(model_name, settings)
    if output.exists() and any(output.iterdir()):
        if not (output / RUN_FILE).exists():
            raise RunError(f"{output} exists and is not a run directory; choose another output")
        if not overwrite:
            raise RunError(f"{output} already holds a run; pass --overwrite to replace it")
    train = labelled_flows(dataset, "train", model.columns)
    val = labelled_flows(dataset, "val", model.columns)
    if train.num_rows == 0:
        raise RunError(f"{dataset} has no labelled training flows")
    staging = output.with_name(output.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log = _file_logger(staging / LOG_FILE)
    log.info("model %s settings %s seed %d", model_name, config_to_dict(model.config), seed)
    log.info("dataset %s: %d train flows, %d val flows", dataset, train.num_rows, val.num_rows)

    def progress(stage: str, done: int, total: int | None) -> None:
        if on_progress:
            on_progress(stage, done, total)
        if total is None or done == total:
            log.info("%s %d/%s", stage, done, total)

    started = time.perf_counter()
    model.fit(train, val if val.num_rows else None, seed=seed, on_progress=progress)
    seconds = time.perf_counter() - started
    log.info("trained in %.2f s; classes %s", seconds, model.classes_)
    model.save(staging / MODEL_DIR)
    write_json(staging / RUN_FILE, {
        "format_version": RUN_FORMAT_VERSION,
        "model": model_name,
        "settings": config_to_dict(model.config),
        "seed": seed,
        "created": now(),
        "train_seconds": seconds,
        "train_flows": train.num_rows,
        "val_flows": val.num_rows,
        "classes": model.classes_,
        "dataset": dataset_description(dataset, manifest),
        "versions": library_versions(),
    })
    for handler in list(log.handlers):
        handler.close()
        log.removeHandler(handler)
    if output.exists():
        shutil.rmtree(output)
    staging.rename(output)
    return output


def _file_logger(path: Path) -> logging.Logger:
    log = logging.getLogger(f"etbert.run.{path.parent}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.addHandler(handler)
    return log
