"""The majority-class baseline: the floor every real model must beat."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from etbert.models.base import FlowModel


class MajorityClass(FlowModel):
    name = "majority"
    columns = ("label",)

    def _fit(self, train, y, val, y_val, on_progress) -> None:
        self.prior_ = np.bincount(y, minlength=len(self.classes_)) / len(y)

    def _predict_proba(self, flows: pa.Table) -> np.ndarray:
        # all mass on the most frequent class, so the baseline's predictions are one class
        one_hot = np.zeros(len(self.classes_))
        one_hot[int(np.argmax(self.prior_))] = 1.0
        return np.tile(one_hot, (flows.num_rows, 1))

    def _save_state(self, directory: Path) -> None:
        (directory / "prior.json").write_text(json.dumps(self.prior_.tolist()))

    def _load_state(self, directory: Path) -> None:
        self.prior_ = np.array(json.loads((directory / "prior.json").read_text()))
