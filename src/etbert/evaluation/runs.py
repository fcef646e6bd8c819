"""A run directory: everything one training produced, and what later commands read back.

    RUN/run.json                 format, model name and settings, dataset (path, manifest hash, split type,
                                 anonymisation policy, classes), seed, timings, library versions
    RUN/model/                   the trained model (model.json + safetensors / skops / JSON state)
    RUN/metrics.json             evaluation on the test split (metrics-<split>.json for the others)
    RUN/early-<split>.json       early identification: metrics using only the first n packets, n = 1..K
    RUN/train.log                what training printed
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import platform
from dataclasses import dataclass
from pathlib import Path

from etbert.dataset.layout import MANIFEST_NAME

RUN_FORMAT_VERSION = 1
RUN_FILE = "run.json"
MODEL_DIR = "model"
LOG_FILE = "train.log"

_VERSIONED = ("etbert", "numpy", "pyarrow", "scikit-learn", "xgboost-cpu", "xgboost", "lightgbm", "torch",
              "transformers", "tokenizers", "safetensors", "skops")


class RunError(Exception):
    """The path is not a usable run directory (one clear line)."""


@dataclass(frozen=True)
class Run:
    path: Path
    info: dict  # run.json

    @property
    def model_dir(self) -> Path:
        return self.path / MODEL_DIR

    @property
    def dataset(self) -> Path:
        return Path(self.info["dataset"]["path"])

    @property
    def name(self) -> str:
        return self.path.name


def metrics_path(run: Path, split: str, packets: int | None = None) -> Path:
    stem = "metrics" if split == "test" else f"metrics-{split}"
    return Path(run) / (f"{stem}.json" if packets is None else f"{stem}-first{packets}.json")


def early_path(run: Path, split: str) -> Path:
    return Path(run) / f"early-{split}.json"


def open_run(path: Path) -> Run:
    path = Path(path)
    info_path = path / RUN_FILE
    if not path.is_dir() or not info_path.exists():
        raise RunError(f"{path} is not a run directory ({RUN_FILE} missing; create one with `etbert train`)")
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RunError(f"{info_path} is unreadable: {error}") from error
    version = info.get("format_version")
    if version != RUN_FORMAT_VERSION:
        raise RunError(f"{path} is a run of format {version!r} (written by etbert "
                       f"{info.get('versions', {}).get('etbert', '?')}); this etbert reads format "
                       f"{RUN_FORMAT_VERSION}: train it again")
    return Run(path, info)


def write_json(path: Path, data: dict) -> None:
    """Write through a temporary file so a killed process never leaves half a JSON file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2))
    temporary.replace(path)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise RunError(f"{path} does not exist") from None
    except (OSError, json.JSONDecodeError) as error:
        raise RunError(f"{path} is unreadable: {error}") from error


def manifest_sha256(dataset: Path) -> str:
    return hashlib.sha256((Path(dataset) / MANIFEST_NAME).read_bytes()).hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
