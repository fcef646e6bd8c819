"""The report's charts: pure functions from metrics to PNG bytes.

Figures are built with ``matplotlib.figure.Figure`` and rendered by the Agg canvas, never through pyplot,
so no global state, display or backend selection is involved.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from etbert.report.compare import PAPER_COLUMNS

ANNOTATE_UP_TO = 25  # classes; beyond this the counts no longer fit in the cells


def confusion_png(confusion: dict, title: str = "") -> bytes:
    """Heatmap of ``{"labels", "matrix"}`` (rows true class): colour is the row share, cells show counts."""
    labels = confusion["labels"]
    counts = np.asarray(confusion["matrix"], dtype=np.int64).reshape(len(labels), len(labels))
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    size = 2.5 + 0.45 * len(labels)
    figure = Figure(figsize=(size + 1.2, size), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    figure.colorbar(image, ax=axes, shrink=0.8, label="share of the true class")
    axes.set_xticks(range(len(labels)), labels, rotation=60, ha="right", rotation_mode="anchor")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    if title:
        axes.set_title(title)
    if len(labels) <= ANNOTATE_UP_TO:
        for row, column in zip(*np.nonzero(counts)):
            axes.text(column, row, str(counts[row, column]), ha="center", va="center", fontsize=8,
                      color="white" if shares[row, column] > 0.5 else "black")
    return _png(figure)


def per_class_f1_png(per_class_by_run: dict[str, dict]) -> bytes:
    """F1 of every class, one bar per run in each class's group (``run label -> metrics["per_class"]``)."""
    classes = list(dict.fromkeys(label for per_class in per_class_by_run.values() for label in per_class))
    runs = list(per_class_by_run)
    width = 0.8 / len(runs)
    figure = Figure(figsize=(_width(0.3 * len(classes) * (len(runs) + 1) + 2), 4.2), layout="constrained")
    axes = figure.subplots()
    positions = np.arange(len(classes))
    for i, run in enumerate(runs):
        per_class = per_class_by_run[run]
        scores = [per_class[label]["f1"] if label in per_class else np.nan for label in classes]
        axes.bar(positions - 0.4 + width * (i + 0.5), scores, width, label=run)
    axes.set_xticks(positions, classes, rotation=45, ha="right", rotation_mode="anchor")
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("F1")
    axes.grid(axis="y", alpha=0.3)
    _legend(axes, len(runs))
    return _png(figure)


def early_png(curves: dict[str, list[dict]]) -> bytes:
    """Accuracy and macro F1 against the packets seen per flow, one line per run (``label -> points``)."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    panels = figure.subplots(1, 2, sharey=True)
    for axes, key, name in zip(panels, ("accuracy", "macro_f1"), ("accuracy", "macro F1")):
        for run, points in curves.items():
            axes.plot([p["packets"] for p in points], [p[key] for p in points], marker="o", markersize=3, label=run)
        axes.set_xlabel("first n packets of each flow")
        axes.set_title(name)
        axes.set_ylim(0, 1.02)
        axes.grid(alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = panels[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", fontsize=8, ncols=min(len(curves), 4), frameon=False)
    return _png(figure)


def comparison_png(rows: list[dict]) -> bytes:
    """The paper's four metrics per evaluated run (rows of ``compare.comparison_rows``)."""
    rows = [row for row in rows if row["evaluated"]]
    width = 0.8 / len(PAPER_COLUMNS)
    figure = Figure(figsize=(_width(1.1 * len(rows) + 2), 4.2), layout="constrained")
    axes = figure.subplots()
    positions = np.arange(len(rows))
    for i, (key, heading) in enumerate(PAPER_COLUMNS):
        axes.bar(positions - 0.4 + width * (i + 0.5), [row[key] for row in rows], width, label=heading)
    axes.set_xticks(positions, [row["run"] for row in rows], rotation=30, ha="right", rotation_mode="anchor")
    axes.set_ylim(0, 1.05)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(ncols=len(PAPER_COLUMNS), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return _png(figure)


def _width(inches: float) -> float:
    """Between 6 and 11 inches: beyond the page's width a browser shrinks the text with the chart."""
    return min(max(inches, 6.0), 11.0)


def _legend(axes, entries: int) -> None:
    axes.legend(fontsize=8, ncols=min(entries, 4), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # no Software stamp: the same metrics give the same bytes on any matplotlib install
    figure.savefig(buffer, format="png", dpi=96, metadata={"Software": None})
    return buffer.getvalue()
