"""Shared fixtures: a small real dataset prepared once per test process from the bundled lab corpus."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # two pytest workers on two cores: no oversubscription

REPO = Path(__file__).resolve().parents[1]

# Each pytest-xdist worker keeps its own numba cache. With one shared cache, two workers compiling the
# same function at once can each write it (numba/numba#4807); a fresh clone once aborted that way.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if _WORKER:
    os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / ".pytest_cache" / "numba" / _WORKER))

import pytest

LAB_CORPUS = REPO / "data" / "lab-default"


@pytest.fixture(scope="session")
def lab_dataset(tmp_path_factory) -> Path:
    """The bundled lab corpus prepared with the defaults (strict anonymisation, flow split, K = 10)."""
    from etbert.dataset.prepare import PrepareConfig, prepare

    output = tmp_path_factory.mktemp("lab") / "dataset"
    prepare(LAB_CORPUS, output, PrepareConfig())
    return output


@pytest.fixture(scope="session")
def lab_tables(lab_dataset) -> dict:
    from etbert.dataset.layout import read_flows

    return {split: read_flows(lab_dataset, split=split) for split in ("train", "val", "test")}
