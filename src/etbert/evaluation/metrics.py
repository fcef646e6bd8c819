"""Classification metrics as the papers report them, macro averages always included.

ET-BERT's paper reports accuracy and macro precision/recall/F1; its code computed none of the macro
figures. Here every evaluation yields the full set, plus per-class figures and the confusion matrix, and
for binary or background-vs-rest tasks the survey's specificity and negative predictive value.
"""

from __future__ import annotations

import numpy as np

BACKGROUND = "background"
HEADLINE = ("accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_f1")


def classification_metrics(y_true: list[str] | np.ndarray, y_pred: list[str] | np.ndarray,
                           classes: list[str]) -> dict:
    """Metrics over class names; ``classes`` fixes the order (true labels unseen in training are added)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=object)
    y_pred = np.asarray(y_pred, dtype=object)
    labels = list(classes) + sorted(set(y_true.tolist()) - set(classes))
    if len(y_true) == 0:
        raise ValueError("no flows to evaluate")
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0)
    present = support > 0  # macro averages over the classes that occur in the evaluated split
    result = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_precision": float(precision[present].mean()),
        "macro_recall": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
        "weighted_f1": float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        "samples": int(len(y_true)),
        "per_class": {
            label: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "confusion_matrix": {
            "labels": labels,  # rows: true class, columns: predicted class
            "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        },
    }
    binary = binary_metrics(y_true, y_pred, labels)
    if binary:
        result["binary"] = binary
    return result


def binary_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict | None:
    """Specificity and NPV for a two-class task, or for background-vs-rest when a background class exists.

    The positive class is the non-background one (or, with two classes and no background, the second).
    """
    if BACKGROUND in labels:
        negative = BACKGROUND
        positive = "rest" if len(labels) > 2 else next(label for label in labels if label != BACKGROUND)
    elif len(labels) == 2:
        negative, positive = labels
    else:
        return None
    true_positive = y_true != negative
    predicted_positive = y_pred != negative
    tp = int(np.sum(true_positive & predicted_positive))
    tn = int(np.sum(~true_positive & ~predicted_positive))
    fp = int(np.sum(~true_positive & predicted_positive))
    fn = int(np.sum(true_positive & ~predicted_positive))
    return {
        "positive": positive,
        "negative": negative,
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "npv": _ratio(tn, tn + fn),
        "counts": {"tp": tp, "tn": tn, "fp": fp, "fn": fn},
    }


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0
