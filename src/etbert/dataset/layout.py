"""A prepared dataset on disk: the contract between preparation and learning.

    DATASET/flows/part-00000.parquet ...   one row per flow (etbert.flows.schema.FLOW_SCHEMA + label, split,
                                           flow_id): one file per `prepare` worker, flows in capture order
                                           when the files are read in name order
    DATASET/manifest.json                  counts, policy, parameters, versions, problems; written last
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from etbert.flows.schema import FLOW_SCHEMA

FLOWS_DIR = "flows"
MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 2  # 1: one flows.parquet file

DATASET_SCHEMA = pa.schema(
    [
        *FLOW_SCHEMA,
        pa.field("label", pa.string()),  # "" when no label source named the flow
        pa.field("split", pa.string()),  # "train", "val" or "test"
        pa.field("flow_id", pa.string()),  # "<capture>#<flow_index>", unique in the dataset
    ]
)


class DatasetError(Exception):
    """The path is not a complete etbert dataset."""


def read_manifest(dataset: Path) -> dict:
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise DatasetError(f"{dataset} is not a dataset folder (run `etbert prepare` first)")
    manifest = dataset / MANIFEST_NAME
    if not manifest.exists():
        raise DatasetError(f"{dataset} has no {MANIFEST_NAME}: not a complete etbert dataset (interrupted prepare?)")
    try:
        data = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DatasetError(f"{manifest} is unreadable: {error}") from error
    if data.get("format_version") != FORMAT_VERSION:
        raise DatasetError(
            f"{dataset} has dataset format {data.get('format_version')!r}; this etbert reads {FORMAT_VERSION} "
            "(prepare it again)"
        )
    return data


def read_flows(dataset: Path, columns: list[str] | None = None, split: str | None = None) -> pa.Table:
    """The flow table of a prepared dataset, optionally only some columns and one split."""
    read_manifest(dataset)
    filters = [("split", "=", split)] if split else None
    return pq.read_table(flow_files(dataset), columns=columns, filters=filters)


def flow_file_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


def flow_files(dataset: Path) -> list[str]:
    """The dataset's flow files in name order, which is the order of their flows."""
    files = sorted(str(path) for path in (Path(dataset) / FLOWS_DIR).glob("part-*.parquet"))
    if not files:
        raise DatasetError(f"{dataset} has no flow files in {FLOWS_DIR}/")
    return files
