"""Features for the classic learners: float matrices with named columns, computed from flow tables.

Named feature sets, each a pure function of a flow table and K (the packets per flow it looks at):

    flow       totals, per-direction size and inter-arrival statistics, flag counts, bursts, rates
    sequence   size, direction and inter-arrival time of the first K packets
    headers    header fields of the first K packets, identity fields excluded
    identity   the identity fields alone: ports, addresses, IP ID, checksums, seq/ack, TCP timestamps

    matrix, names = feature_matrix(flows, ("flow", "sequence"), packets=10)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pyarrow as pa

from etbert.features.flow_stats import SEQUENCE_COLUMNS, STATISTICS_COLUMNS, flow_statistics, packet_sequence
from etbert.features.headers import HEADER_COLUMNS, IDENTITY_COLUMNS, header_features, identity_header_features


@dataclass(frozen=True)
class FeatureSet:
    compute: Callable[[pa.Table, int], tuple[np.ndarray, list[str]]]
    columns: tuple[str, ...]  # the dataset columns it reads


FEATURE_SETS: dict[str, FeatureSet] = {
    "flow": FeatureSet(lambda flows, packets: flow_statistics(flows), STATISTICS_COLUMNS),
    "sequence": FeatureSet(packet_sequence, SEQUENCE_COLUMNS),
    "headers": FeatureSet(header_features, HEADER_COLUMNS),
    "identity": FeatureSet(identity_header_features, IDENTITY_COLUMNS),
}


def feature_matrix(flows: pa.Table, sets: tuple[str, ...], packets: int) -> tuple[np.ndarray, list[str]]:
    """The named feature sets side by side, in the order given."""
    check_feature_sets(sets)
    parts = [FEATURE_SETS[name].compute(flows, packets) for name in sets]
    return np.hstack([matrix for matrix, _ in parts]), [name for _, names in parts for name in names]


def feature_columns(sets: tuple[str, ...]) -> tuple[str, ...]:
    check_feature_sets(sets)
    return tuple(sorted({column for name in sets for column in FEATURE_SETS[name].columns}))


def check_feature_sets(sets: tuple[str, ...]) -> None:
    unknown = [name for name in sets if name not in FEATURE_SETS]
    if unknown or not sets:
        raise ValueError(f"unknown feature set(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(FEATURE_SETS)}")
