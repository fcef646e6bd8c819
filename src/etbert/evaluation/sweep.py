"""One model setting swept over values: headline metrics per value, on the test split or by k-fold CV.

The handshake CNN paper's experiment 1 (accuracy, precision and recall against the ratio R of random
to real background images) is ``setting_sweep(dataset, "handshake-cnn", "random_ratio", [0, 0.05, ...])``.
Its point, that random background images make the background class "approximately complete", shows with
``others="background"``:
the flows of every class outside ``classes`` are never trained on but join each test set as background,
and ``others_recall`` is the share of them the model indeed calls background (``known_accuracy`` and
``known_macro_f1``: the figures without them).

    OUT/sweep.json   protocol (dataset, classes, folds, settings, seed) and one point per value, written
                     after every value so an interrupted sweep keeps what it finished
    OUT/sweep.png    accuracy, macro precision, macro recall, macro F1 (with others: known_macro_f1 and
                     others_recall) against the value

Without folds a model trains on the train split (the val split steers it as in `train_run`) and is scored
on the test split. With k folds, the flows of every split are pooled and cut into k stratified folds (a row
is a flow, so no flow is ever on both sides); each fold is the test set once for a model trained on the
other k-1, without a validation set, and a point holds the mean and standard deviation over folds. Every
value sees the same folds and seeds, so the values are compared on the same data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etbert.dataset.layout import read_manifest
from etbert.evaluation.metrics import HEADLINE, classification_metrics
from etbert.evaluation.runs import write_json
from etbert.evaluation.train import dataset_description, labelled_flows
from etbert.models.base import ProgressCallback
from etbert.models.registry import create_model, model_class

SWEEP_FILE = "sweep.json"
PLOT_FILE = "sweep.png"
OTHERS = ("known_accuracy", "known_macro_f1", "others_recall")  # with others: closed-set figures, unseen flows
PLOTTED = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "known_macro_f1", "others_recall")

Partition = tuple[pa.Table, pa.Table | None, pa.Table]  # train, val, test


def setting_sweep(dataset: Path, model_name: str, setting: str, values: Sequence[Any], output: Path,
                  classes: Sequence[str] | None = None, others: str | None = None, folds: int | None = None,
                  settings: dict[str, Any] | None = None, seed: int = 0,
                  on_progress: ProgressCallback | None = None) -> dict:
    """Train and score ``model_name`` with ``setting`` at each of ``values``; writes OUT/sweep.json and the plot.

    ``classes``: learn only flows of these labels (the paper's Shadowsocks vs V2Ray vs background).
    ``others``: one of ``classes``; the flows of all other classes are tested (never trained) as that class.
    """
    dataset, output = Path(dataset), Path(output)
    if not values:
        raise ValueError("no values to sweep")
    settings = dict(settings or {})
    progress = on_progress or (lambda *_: None)
    for value in values:  # every configuration is checked before hours of training
        create_model(model_name, {**settings, setting: value})
    manifest = read_manifest(dataset)
    if others is not None and others not in (classes or ()):
        raise ValueError(f"the class unseen flows count as ({others!r}) must be one of the classes learnt")
    flows = labelled_flows(dataset, None, model_class(model_name).columns)
    known = _known(flows, classes, dataset)
    partitions = _partitions(flows.filter(known), folds, seed)
    # unseen flows: the test flows (or every fold's test flows) of the other classes, relabelled
    unseen = [_relabelled(test, others) for *_, test in _partitions(flows.filter(pc.invert(known)), folds, seed)
              ] if others is not None else [None] * len(partitions)
    output.mkdir(parents=True, exist_ok=True)
    result = {
        "model": model_name, "setting": setting, "settings": settings, "seed": seed, "folds": folds,
        "classes": sorted(set(flows.filter(known).column("label").to_pylist())), "others": others,
        "dataset": dataset_description(dataset, manifest), "points": [],
    }
    for value in values:
        scores = []
        for index, ((train, val, test), extra) in enumerate(zip(partitions, unseen)):
            stage = f"{setting}={value}" + (f" fold {index + 1}/{folds}" if folds else "")
            model = create_model(model_name, {**settings, setting: value})
            model.fit(train, val, seed=seed + index,
                      on_progress=lambda step, done, total: progress(f"{stage} {step}", done, total))
            if extra is None:
                scores.append(_score(model, test))
                continue
            score = _score(model, pa.concat_tables([test, extra]))
            known_score = _score(model, test)  # the closed-set figures, as without others
            score.update({f"known_{key}": known_score[key] for key in ("accuracy", "macro_f1")})
            score["others_recall"] = float(np.mean(model.predict(extra) == others))
            scores.append(score)
        result["points"].append(_point(value, scores))
        write_json(output / SWEEP_FILE, result)
    plot_sweep(result, output / PLOT_FILE)
    return result


def _score(model, test: pa.Table) -> dict:
    return classification_metrics(test.column("label").to_pylist(), model.predict(test), model.classes_)


def _known(flows: pa.Table, classes: Sequence[str] | None, dataset: Path) -> pa.ChunkedArray:
    """Which flows belong to ``classes`` (all when none are named)."""
    if not classes:
        return pc.is_valid(flows.column("label"))
    missing = sorted(set(classes) - set(flows.column("label").to_pylist()))
    if missing:
        raise ValueError(f"{dataset} has no flows of class(es) {', '.join(missing)}")
    return pc.is_in(flows.column("label"), value_set=pa.array(list(classes)))


def _relabelled(flows: pa.Table, label: str) -> pa.Table:
    index = flows.column_names.index("label")
    return flows.set_column(index, "label", pa.array([label] * flows.num_rows, pa.string()))


def _partitions(flows: pa.Table, folds: int | None, seed: int) -> list[Partition]:
    return _folds(flows, folds, seed) if folds else _splits(flows)


def _splits(flows: pa.Table) -> list[Partition]:
    split = flows.column("split")
    train, val, test = (flows.filter(pc.equal(split, name)) for name in ("train", "val", "test"))
    if train.num_rows == 0 or test.num_rows == 0:
        raise ValueError("the dataset needs train and test flows (or use folds)")
    return [(train, val if val.num_rows else None, test)]


def _folds(flows: pa.Table, folds: int, seed: int) -> list[Partition]:
    from sklearn.model_selection import StratifiedKFold

    labels = np.array(flows.column("label").to_pylist(), dtype=object)
    smallest = min(np.unique(labels, return_counts=True)[1])
    if folds < 2 or smallest < folds:
        raise ValueError(f"{folds} folds need at least 2 folds and {folds} flows per class; the smallest class "
                         f"has {smallest}")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(flows.take(train), None, flows.take(test)) for train, test in splitter.split(labels, labels)]


def _point(value: Any, scores: list[dict]) -> dict:
    """Mean headline metrics over folds (one fold: its full metrics), their spread, and every fold's figures."""
    point = {"value": value}
    headline = [key for key in (*HEADLINE, *OTHERS) if key in scores[0]]
    for key in headline:
        figures = np.array([score[key] for score in scores])
        point[key] = float(figures.mean())
        point[f"{key}_std"] = float(figures.std())
    if len(scores) == 1:
        point.update({key: scores[0][key] for key in ("samples", "per_class", "confusion_matrix")})
    else:
        point["folds"] = [{key: score[key] for key in (*headline, "samples")} for score in scores]
    return point


def plot_sweep(result: dict, path: Path) -> None:
    """Headline metrics against the swept value (error bars: standard deviation over folds)."""
    from matplotlib.figure import Figure

    points = result["points"]
    values = [float(point["value"]) for point in points]
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    for key in (key for key in PLOTTED if key in points[0]):
        axes.errorbar(values, [point[key] for point in points], yerr=[point[f"{key}_std"] for point in points],
                      marker="o", capsize=3, label=key.replace("_", " "))
    folds = f", {result['folds']}-fold CV" if result["folds"] else ", test split"
    others = f", other classes tested as {result['others']}" if result.get("others") else ""
    axes.set_title(f"{result['model']} on {result['dataset']['name']}{folds}{others}", fontsize=10)
    axes.set_xlabel(result["setting"])
    axes.set_ylabel("score")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.savefig(path, dpi=120)
