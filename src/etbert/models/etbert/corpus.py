"""The unlabelled flows that pre-training and vocabulary training read.

A corpus path is either a prepared dataset, of which only the training split is read (pre-training must
never see the test split; val is left out too unless asked for), or captures, which are prepared on the fly
with the default dataset settings (strict anonymisation) into a temporary folder, every flow in train.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa

from etbert.dataset.layout import MANIFEST_NAME, read_flows

CORPUS_COLUMNS = ["pkt_direction", "pkt_bytes", "pkt_payload_offset"]


class CorpusError(Exception):
    """A corpus path is unusable (one clear line)."""


def read_corpus(paths: list[Path], include_val: bool = False) -> pa.Table:
    """The packet columns of the pre-training flows of every path, concatenated."""
    if not paths:
        raise CorpusError("no corpus given")
    tables = []
    for path in map(Path, paths):
        if not path.exists():
            raise CorpusError(f"corpus {path} does not exist")
        if (path / MANIFEST_NAME).exists():
            splits = ("train", "val") if include_val else ("train",)
            tables += [read_flows(path, columns=CORPUS_COLUMNS, split=split) for split in splits]
        else:
            tables.append(_prepare_captures(path))
    flows = pa.concat_tables(tables)
    if flows.num_rows == 0:
        raise CorpusError(f"no training flows in {', '.join(map(str, paths))}")
    return flows


def _prepare_captures(path: Path) -> pa.Table:
    from etbert.dataset.prepare import PrepareConfig, PrepareError, prepare

    with tempfile.TemporaryDirectory(prefix="etbert-corpus-") as scratch:
        dataset = Path(scratch) / "dataset"
        try:
            prepare(path, dataset, PrepareConfig(fractions=(1.0, 0.0, 0.0)))
        except (PrepareError, ValueError) as error:
            raise CorpusError(f"cannot prepare captures {path}: {error}") from error
        return read_flows(dataset, columns=CORPUS_COLUMNS).combine_chunks()  # all of it: nothing to hold out
