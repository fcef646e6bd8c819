"""`etbert audit`: does a dataset's accuracy come from the traffic's behaviour, or from shortcuts?

Two checks, each training the same quick model (LightGBM) twice and reporting the gap in macro F1:

  identity fields   flow + header features, without and then with the identity fields (ports, addresses,
                    IP ID, checksums, TCP seq/ack and timestamps). Trained on train, scored on test.
                    A model that gains from them recognises hosts and flows, not classes.
  packet split      one sample per packet (its first bytes, length, direction), split at random by packet
                    versus by the dataset's flow split. Packets of one flow in both train and test let a
                    model recognise the flow: the inflation behind published per-packet results.

A gap above the threshold (default 0.10 macro F1) is flagged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etbert.dataset.layout import read_flows, read_manifest
from etbert.dataset.samples import packet_samples
from etbert.evaluation.metrics import classification_metrics
from etbert.features import feature_matrix
from etbert.models.base import ProgressCallback

GAP_THRESHOLD = 0.10
PACKET_BYTES = 64  # bytes of each packet the packet-split check looks at
HONEST_SETS = ("flow", "sequence", "headers")
RANDOM_TEST_FRACTION = 0.2


@dataclass
class AuditCheck:
    name: str
    honest: str  # what the honest model saw / how it was split
    leaky: str
    honest_f1: float
    leaky_f1: float
    flagged: bool
    note: str = ""

    @property
    def gap(self) -> float:
        return self.leaky_f1 - self.honest_f1


@dataclass
class AuditReport:
    dataset: str
    split_type: str
    anonymize: str
    threshold: float
    checks: list[AuditCheck] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return any(check.flagged for check in self.checks)

    def to_dict(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "checks"}, "flagged": self.flagged,
                "checks": [{**asdict(check), "gap": check.gap} for check in self.checks]}


def audit_dataset(dataset: Path, threshold: float = GAP_THRESHOLD, seed: int = 0, max_flows: int = 20000,
                  on_progress: ProgressCallback | None = None) -> AuditReport:
    manifest = read_manifest(dataset)
    parameters = manifest.get("parameters", {})
    packets = parameters.get("meter", {}).get("max_packets", 10)
    flows = read_flows(dataset)
    flows = flows.filter(pc.not_equal(flows.column("label"), ""))
    flows = _sample(flows, max_flows, seed)
    report = AuditReport(str(dataset), parameters.get("split", "?"), parameters.get("anonymize", "?"), threshold)
    progress = on_progress or (lambda *_: None)
    progress("identity fields", 0, 2)
    report.checks.append(_identity_check(flows, packets, threshold, seed))
    progress("packet split", 1, 2)
    report.checks.append(_packet_split_check(flows, packets, threshold, seed))
    progress("done", 2, 2)
    return report


def _identity_check(flows: pa.Table, packets: int, threshold: float, seed: int) -> AuditCheck:
    split = np.array(flows.column("split").to_pylist(), dtype=object)
    labels = np.array(flows.column("label").to_pylist(), dtype=object)
    train, test = split == "train", split == "test"
    if not test.any() or len(set(labels[train])) < 2:
        return AuditCheck("identity fields", "", "", 0.0, 0.0, False, "skipped: needs a train and a test split")
    honest, _ = feature_matrix(flows, HONEST_SETS, packets)
    identity, identity_names = feature_matrix(flows, ("identity",), packets)
    with_identity = np.hstack([honest, identity])
    honest_f1 = _quick_f1(honest[train], labels[train], honest[test], labels[test], seed)
    leaky_model, leaky_f1 = _quick_model(with_identity[train], labels[train], with_identity[test], labels[test], seed)
    importance = leaky_model.booster_.feature_importance("gain")[honest.shape[1]:]
    top = [identity_names[i] for i in np.argsort(-importance)[:3] if importance[i] > 0]
    note = f"identity fields the model leant on most: {', '.join(top)}" if top else ""
    return AuditCheck("identity fields", "flow + header features", "+ ports, addresses, IP ID, checksums, seq/ack, "
                      "timestamps", honest_f1, leaky_f1, leaky_f1 - honest_f1 > threshold, note)


def _packet_split_check(flows: pa.Table, packets: int, threshold: float, seed: int) -> AuditCheck:
    samples, _ = packet_samples(flows.select(["flow_id", "label", "split", "pkt_direction", "pkt_length", "pkt_bytes",
                                              "pkt_l4_offset", "pkt_payload_offset"]), packets)
    labels = np.array(samples.column("label").to_pylist(), dtype=object)
    split = np.array(samples.column("split").to_pylist(), dtype=object)
    x = _packet_features(samples)
    by_flow_train, by_flow_test = split == "train", split == "test"
    if not by_flow_test.any() or len(set(labels[by_flow_train])) < 2:
        return AuditCheck("packet split", "", "", 0.0, 0.0, False, "skipped: needs a train and a test split")
    honest_f1 = _quick_f1(x[by_flow_train], labels[by_flow_train], x[by_flow_test], labels[by_flow_test], seed)
    random_test = np.random.default_rng(seed).random(len(labels)) < RANDOM_TEST_FRACTION
    leaky_f1 = _quick_f1(x[~random_test], labels[~random_test], x[random_test], labels[random_test], seed)
    note = (f"{len(labels)} packets from {flows.num_rows} flows, first {PACKET_BYTES} bytes of each. A gap means a "
            "per-packet random split (as in published packet-level results) would inflate the numbers; keep "
            "splitting by flow or capture")
    return AuditCheck("packet split", "packets split by flow", "packets split at random", honest_f1, leaky_f1,
                      leaky_f1 - honest_f1 > threshold, note)


def _packet_features(samples: pa.Table) -> np.ndarray:
    """First bytes as they are stored (i.e. after the dataset's anonymisation), -1 past the end; length, direction."""
    data = np.full((samples.num_rows, PACKET_BYTES), -1.0)
    for row, packet in enumerate(samples.column("bytes").to_pylist()):
        head = np.frombuffer(packet[:PACKET_BYTES], dtype=np.uint8)
        data[row, :len(head)] = head
    extra = [samples.column(name).to_numpy().astype(np.float64) for name in ("length", "direction", "packet_index")]
    return np.column_stack([data, *extra])


def _quick_model(x_train, y_train, x_test, y_test, seed: int):
    from lightgbm import LGBMClassifier

    model = LGBMClassifier(n_estimators=100, learning_rate=0.1, num_leaves=31, min_child_samples=5,
                           class_weight="balanced", random_state=seed, n_jobs=1, deterministic=True, verbose=-1)
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)
    return model, classification_metrics(y_test, predicted, sorted(set(y_train)))["macro_f1"]


def _quick_f1(x_train, y_train, x_test, y_test, seed: int) -> float:
    return _quick_model(x_train, y_train, x_test, y_test, seed)[1]


def _sample(flows: pa.Table, max_flows: int, seed: int) -> pa.Table:
    if flows.num_rows <= max_flows:
        return flows
    keep = np.sort(np.random.default_rng(seed).choice(flows.num_rows, max_flows, replace=False))
    return flows.take(pa.array(keep))
