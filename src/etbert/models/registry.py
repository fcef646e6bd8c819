"""Named models: the one list the CLI, the harness and the report look models up in.

Entries name a module and a class, imported only when the model is used, so `etbert --help` and the
classic learners never pay for importing PyTorch.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from etbert.models.base import MODEL_FILE, FlowModel, ModelError, config_from_dict

MODELS: dict[str, str] = {
    "majority": "etbert.models.majority:MajorityClass",
    "random-forest": "etbert.models.classic:RandomForest",
    "xgboost": "etbert.models.classic:XGBoost",
    "lightgbm": "etbert.models.classic:LightGBM",
    "svm": "etbert.models.classic:SupportVectorMachine",
    "knn": "etbert.models.classic:NearestNeighbours",
    "header-lightgbm": "etbert.models.classic:HeaderLightGBM",
    "lstm-attention": "etbert.models.lstm_attention:LSTMAttention",
    "handshake-cnn": "etbert.models.handshake_cnn:HandshakeCNN",
    "etbert-flow": "etbert.models.etbert.model:EtbertFlow",
    "etbert-packet": "etbert.models.etbert.model:EtbertPacket",
}


def model_names() -> list[str]:
    return sorted(MODELS)


def model_class(name: str) -> type[FlowModel]:
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(model_names())}")
    module_name, class_name = MODELS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_model(name: str, settings: dict[str, Any] | None = None) -> FlowModel:
    """A new, untrained model; ``settings`` override its config defaults (strings are converted)."""
    cls = model_class(name)
    return cls(config_from_dict(cls.Config, settings or {}))


def load_model(directory: Path) -> FlowModel:
    directory = Path(directory)
    path = directory / MODEL_FILE
    if not path.exists():
        raise ModelError(f"{directory} holds no saved model ({MODEL_FILE} missing)")
    try:
        description = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ModelError(f"{path} is unreadable: {error}") from error
    return model_class(description.get("name", "")).restore(directory, description)
