"""Several runs side by side: the ET-BERT paper's table (AC, PR, RC, F1), always with its protocol.

A number means little without the split it was measured on (flow, capture or time) and the anonymisation
the traffic went through, so every row carries both, and the dataset it came from.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table
from rich.text import Text

from etbert.evaluation.metrics import HEADLINE
from etbert.evaluation.runs import Run, early_path, metrics_path, open_run, read_json

# the paper's columns: (row key, heading)
PAPER_COLUMNS = (("accuracy", "AC"), ("macro_precision", "PR"), ("macro_recall", "RC"), ("macro_f1", "F1"))


@dataclass(frozen=True)
class RunResults:
    """One run as the report reads it: run.json, and its evaluations where they were made."""

    run: Run
    label: str  # unique among the runs shown together
    split: str
    metrics: dict | None  # metrics.json (or metrics-<split>.json); None: not evaluated
    early: dict | None  # early-<split>.json; None: no early-identification curve

    @property
    def split_type(self) -> str:
        return (self.metrics or {}).get("split_type") or self.run.info["dataset"].get("split_type", "?")

    @property
    def anonymize(self) -> str:
        return (self.metrics or {}).get("anonymize") or self.run.info["dataset"].get("anonymize", "?")

    @property
    def dataset_name(self) -> str:
        dataset = self.run.info["dataset"]
        return dataset.get("name") or Path(dataset["path"]).name


def load_results(run_paths: list[Path], split: str = "test") -> list[RunResults]:
    """Open every run (RunError for a path that is not one) and read its evaluations of ``split``."""
    runs = [open_run(path) for path in run_paths]
    return [RunResults(run, label, split, _read_optional(metrics_path(run.path, split)),
                       _read_optional(early_path(run.path, split)))
            for run, label in zip(runs, run_labels([run.path for run in runs]))]


def run_labels(paths: list[Path]) -> list[str]:
    """Run folder names, lengthened by parent folders until no two runs shown together share one."""
    paths = [Path(path).resolve() for path in paths]
    depth = 1
    while True:
        labels = ["/".join(path.parts[-depth:]) for path in paths]
        if len(set(labels)) == len(labels) or all(depth >= len(path.parts) for path in paths):
            return labels
        depth += 1


def comparison_rows(run_paths: list[Path], split: str = "test") -> list[dict]:
    """One row per run: model, dataset, split type, anonymisation and the headline metrics (None if not evaluated)."""
    return rows_of(load_results(run_paths, split))


def rows_of(results: list[RunResults]) -> list[dict]:
    datasets = dataset_labels(results)
    rows = []
    for result in results:
        metrics = result.metrics or {}
        dataset = result.run.info["dataset"]
        rows.append({
            "run": result.label,
            "path": str(result.run.path),
            "model": result.run.info["model"],
            "dataset": datasets[dataset.get("manifest_sha256", "")],
            "dataset_path": dataset["path"],
            "manifest_sha256": dataset.get("manifest_sha256", ""),
            "split": result.split,
            "split_type": result.split_type,
            "anonymize": result.anonymize,
            "evaluated": result.metrics is not None,
            "samples": metrics.get("samples"),
            **{key: metrics.get(key) for key in HEADLINE},
        })
    return rows


def dataset_labels(results: list[RunResults]) -> dict[str, str]:
    """Manifest hash -> dataset name; two different datasets of one name get their hash prefix."""
    names = {result.run.info["dataset"].get("manifest_sha256", ""): result.dataset_name for result in results}
    shared = Counter(names.values())
    return {sha: name if shared[name] == 1 else f"{name} ({sha[:8]})" for sha, name in names.items()}


def mixed_protocols(rows: list[dict]) -> list[str]:
    """What differs between the rows' evaluation protocols (their numbers are then not directly comparable)."""
    differing = []
    for key, name in (("manifest_sha256", "datasets"), ("split_type", "split types"), ("anonymize", "anonymisation"),
                      ("split", "evaluated splits")):
        if len({row[key] for row in rows}) > 1:
            differing.append(name)
    return differing


def comparison_table(rows: list[dict]) -> Table:
    """The rows as a rich table (what `etbert compare` prints)."""
    table = Table(title="Model comparison", title_justify="left")
    for heading in ("run", "model", "dataset", "split (evaluated)", "anonymisation", "flows"):
        table.add_column(heading, justify="right" if heading == "flows" else "left")
    for _, heading in PAPER_COLUMNS:
        table.add_column(heading, justify="right")
    for row in rows:
        # Text, not markup: run and dataset names are the user's
        protocol = [Text(str(value)) for value in (row["run"], row["model"], row["dataset"],
                                                   f"{row['split_type']} ({row['split']})", row["anonymize"])]
        if row["evaluated"]:
            table.add_row(*protocol, str(row["samples"]), *(f"{row[key]:.4f}" for key, _ in PAPER_COLUMNS))
        else:
            table.add_row(*protocol, "", "[dim]not evaluated[/dim]", *([""] * (len(PAPER_COLUMNS) - 1)))
    return table


def _read_optional(path: Path) -> dict | None:
    return read_json(path) if path.exists() else None
