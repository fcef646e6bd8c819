"""The one interface every classifier of the harness implements, classic and deep alike.

A model reads a flow table (rows of ``etbert.dataset.layout.DATASET_SCHEMA``; ``label`` needed only to fit)
and decides itself what to take from it: statistics, packet sizes, bytes, tokens, images. It never reads
captures: the dataset on disk is the contract between preparation and learning.

    model = create_model("random-forest", {"n_estimators": 200})
    model.fit(train_table, val_table, seed=0)
    probabilities = model.predict_proba(test_table)   # (flows, len(model.classes_)), rows sum to 1
    model.save(directory); same = load_model(directory)

The constructor stores the configuration and does nothing else (as in scikit-learn). Configurations are
dataclasses that round-trip through JSON; ``save`` writes ``model.json`` (name, config, classes) beside
whatever the model writes in ``_save_state`` (safetensors, skops, JSON: never pickle).
"""

from __future__ import annotations

import dataclasses
import json
import random
import sys
import types
import typing
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import pyarrow as pa

MODEL_FILE = "model.json"

# on_progress(stage, done, total): long work reports e.g. ("epoch 3/10", 120, 400); total None if unknown
ProgressCallback = Callable[[str, int, "int | None"], None]


class ModelError(Exception):
    """A model cannot be built, trained, saved or loaded as asked (one clear line)."""


@dataclasses.dataclass
class NoConfig:
    """For models without settings."""


class FlowModel:
    """Base class: subclasses set ``name`` and ``Config`` and implement the four underscored hooks."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    # dataset columns the model reads (None: all); lets the harness skip the heavy byte columns
    columns: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()
        self.classes_: list[str] = []

    # ----- what subclasses implement --------------------------------------------------------------

    def _fit(self, train: pa.Table, y: np.ndarray, val: pa.Table | None, y_val: np.ndarray | None,
             on_progress: ProgressCallback) -> None:
        """Train on class indices ``y`` (into ``self.classes_``); ``val`` may steer early stopping or tuning."""
        raise NotImplementedError

    def _predict_proba(self, flows: pa.Table) -> np.ndarray:
        raise NotImplementedError

    def _save_state(self, directory: Path) -> None:
        raise NotImplementedError

    def _load_state(self, directory: Path) -> None:
        raise NotImplementedError

    def packet_predictions(self, flows: pa.Table) -> tuple[np.ndarray, np.ndarray] | None:
        """For packet-level models: (class index of each packet's flow, per-packet probabilities); else None.

        The harness then reports packet-level metrics beside the flow-level ones.
        """
        return None

    # ----- the public interface -------------------------------------------------------------------

    def fit(self, train: pa.Table, val: pa.Table | None = None, *, seed: int = 0,
            on_progress: ProgressCallback | None = None) -> "FlowModel":
        labels = _labels(train)
        self.classes_ = sorted(set(labels.tolist()))
        if len(self.classes_) < 2:
            raise ModelError(f"training needs at least two classes; the training flows have {self.classes_}")
        index = {name: i for i, name in enumerate(self.classes_)}
        y = np.array([index[label] for label in labels], dtype=np.int64)
        y_val = None
        if val is not None:
            known = np.isin(_labels(val), self.classes_)
            val = val.filter(pa.array(known)) if not known.all() else val
            y_val = np.array([index[label] for label in _labels(val)], dtype=np.int64)
            if val.num_rows == 0:
                val, y_val = None, None
        seed_everything(seed)
        self._fit(train, y, val, y_val, on_progress or (lambda *_: None))
        return self

    def predict_proba(self, flows: pa.Table) -> np.ndarray:
        if not self.classes_:
            raise ModelError(f"{self.name} is not trained")
        if flows.num_rows == 0:
            return np.zeros((0, len(self.classes_)))
        probabilities = np.asarray(self._predict_proba(flows), dtype=np.float64)
        return probabilities / np.clip(probabilities.sum(axis=1, keepdims=True), 1e-12, None)

    def predict(self, flows: pa.Table) -> np.ndarray:
        """Predicted class names."""
        return np.array(self.classes_, dtype=object)[self.predict_proba(flows).argmax(axis=1)]

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_state(directory)
        description = {"name": self.name, "config": config_to_dict(self.config), "classes": self.classes_}
        (directory / MODEL_FILE).write_text(json.dumps(description, indent=2))

    @classmethod
    def restore(cls, directory: Path, description: dict) -> "FlowModel":
        model = cls(config_from_dict(cls.Config, description.get("config", {})))
        model.classes_ = list(description["classes"])
        model._load_state(Path(directory))
        return model


def _labels(table: pa.Table) -> np.ndarray:
    if "label" not in table.column_names:
        raise ModelError("the flow table has no label column")
    labels = np.array(table.column("label").to_pylist(), dtype=object)
    if (labels == "").any():
        raise ModelError(f"{int((labels == '').sum())} flows have no label; fit on labelled flows only")
    return labels


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch = sys.modules.get("torch")  # deep models import it before fitting; the others need not pay for it
    if torch is not None:
        torch.manual_seed(seed)


# ----- configurations: dataclasses <-> JSON-able dicts ------------------------------------------------


def config_to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def config_from_dict(config_class: type, values: dict[str, Any]) -> Any:
    """Build a config dataclass from strings or JSON values; unknown keys and bad values are one clear error."""
    fields = {field.name: field for field in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        known = ", ".join(fields) or "none"
        raise ModelError(f"unknown setting(s) {', '.join(unknown)} for this model; known: {known}")
    hints = typing.get_type_hints(config_class)
    converted = {}
    for key, value in values.items():
        try:
            converted[key] = _coerce(value, hints[key])
        except (TypeError, ValueError) as error:
            raise ModelError(f"setting {key}={value!r}: expected {hints[key]}") from error
    try:
        return config_class(**converted)
    except (TypeError, ValueError) as error:
        raise ModelError(f"bad settings: {error}") from error


def _coerce(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in options:
                return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option)
            except (TypeError, ValueError) as error:
                errors.append(error)
        raise ValueError(errors)
    if origin in (tuple, list):
        items = value.split(",") if isinstance(value, str) else list(value)
        args = typing.get_args(hint)
        item_hint = args[0] if args else str
        return origin(_coerce(item, item_hint) for item in items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(value)
    if hint is int:
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if hint is float:
        return float(value)
    if hint is str:
        return str(value)
    return value
