"""The dataset manifest: everything needed to trust (and reproduce) a prepared dataset."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
from collections import Counter
from pathlib import Path

import numpy as np

from etbert.dataset.layout import FORMAT_VERSION
from etbert.dataset.split import Coded, count_pairs

# A class whose flows are mostly single packets has degenerate flow structure (e.g. per-packet
# anonymised addresses): flow-level models then see packets, not flows. Warn above this share.
SINGLE_PACKET_WARNING = 0.5


def build_manifest(*, config, input_path, label_source, results, metered_labels: Coded, labels: Coded, splits: Coded,
                   duplicate_report, limit_report, split_report) -> dict:
    """``metered_labels``: every metered flow's label, in the order of ``results``; ``labels`` and ``splits``:
    those of the flows written."""
    counts = count_pairs(labels, splits)
    status = Counter()
    totals = Counter()
    for result in results:
        status.update(result.counters.status)
        totals["frames"] += result.counters.frames
        totals["packets"] += result.counters.packets
        totals["flows_metered"] += result.counters.flows
        totals["orphan_fragments"] += result.counters.orphan_fragments
    totals["flows"] = int(len(labels))
    totals["unlabelled_flows"] = int(np.count_nonzero(labels.codes == labels.code_of("")))
    captures = [
        {
            "path": r.capture,
            "format": r.report.format,
            "frames": r.report.frames,
            "flows": len(r.labels),
            "problems": r.report.problems,
        }
        for r in results
        if r.report.is_capture
    ]
    not_captures = [r.capture for r in results if not r.report.is_capture]
    return {
        "format_version": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "input": str(input_path),
        "parameters": {
            "split": config.split,
            "fractions": list(config.fractions),
            "anonymize": config.anonymize,
            "seed": config.seed,
            "labels": label_source.describe(),
            "max_per_class": config.max_per_class,
            "min_per_class": config.min_per_class,
            "meter": dataclasses.asdict(config.meter),
        },
        "anonymize": config.anonymize,
        "split": config.split,
        "counts": counts,
        "totals": dict(totals),
        "decoder_status": dict(status),
        "duplicates": _plain(duplicate_report),
        "class_limits": _plain(limit_report),
        "split_report": _plain(split_report),
        "degenerate_classes": _degenerate_classes(metered_labels, results),
        "captures": captures,
        "not_captures": not_captures,
        "problems": [f"{r.capture}: {p}" for r in results if r.report.is_capture for p in r.report.problems],
        "versions": _versions(),
    }


def _degenerate_classes(labels: Coded, results) -> dict[str, float]:
    """Share of single-packet flows per class, for classes above SINGLE_PACKET_WARNING."""
    single_packet = np.concatenate([np.zeros(0, dtype=np.int64)] + [r.packet_counts for r in results]) == 1
    total = np.bincount(labels.codes, minlength=len(labels.names))
    single = np.bincount(labels.codes[single_packet], minlength=len(labels.names))
    return {name: round(float(single[i] / total[i]), 4) for i, name in enumerate(labels.names)
            if total[i] and single[i] / total[i] > SINGLE_PACKET_WARNING}


def _plain(report):
    if report is None:
        return None
    if dataclasses.is_dataclass(report):
        return json.loads(json.dumps(dataclasses.asdict(report), default=_json_default))
    return report


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _versions() -> dict[str, str]:
    import numpy
    import pyarrow

    from etbert import __version__

    return {"etbert": __version__, "python": platform.python_version(), "numpy": numpy.__version__,
            "pyarrow": pyarrow.__version__}


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default))
    os.replace(tmp, path)
