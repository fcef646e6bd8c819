"""Commands over runs: train, evaluate, predict, audit."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from etbert.cli.common import app, console, errors, fail, settings_from, step_progress


def _headline(metrics: dict, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("split", "split by", "anonymize", "n", "AC", "PR", "RC", "F1"):
        table.add_column(column, justify="left" if column in ("split", "split by", "anonymize") else "right")
    table.add_row(metrics["split"], metrics["split_type"], metrics["anonymize"], str(metrics["samples"]),
                  *(f"{metrics[key]:.4f}" for key in ("accuracy", "macro_precision", "macro_recall", "macro_f1")))
    return table


@app.command()
def train(
    dataset: Path = typer.Argument(..., help="A dataset folder written by `etbert prepare`."),
    model: str = typer.Option(..., "--model", "-m", help="Model name (see `etbert models`)."),
    output: Path = typer.Option(..., "-o", "--output", help="Run directory to write."),
    config: Optional[Path] = typer.Option(None, "--config", help="Model settings, JSON or TOML."),
    set_: list[str] = typer.Option([], "--set", help="One setting, key=value (repeatable; wins over --config)."),
    seed: int = typer.Option(0, help="Seed of everything random in training."),
    evaluate: bool = typer.Option(True, help="Evaluate on the test split when training ends."),
    overwrite: bool = typer.Option(False, help="Replace an existing run directory."),
) -> None:
    """Train a model on the dataset's train split (val for early stopping) and write a run directory."""
    from etbert.dataset.layout import DatasetError
    from etbert.evaluation.evaluate import evaluate_run
    from etbert.evaluation.runs import RunError
    from etbert.evaluation.train import train_run
    from etbert.models.base import ModelError

    settings = settings_from(config, set_)
    progress = step_progress()
    tasks: dict[str, int] = {}

    def on_progress(stage: str, done: int, total: int | None) -> None:
        if stage not in tasks:
            for task in tasks.values():
                progress.update(task, visible=False)
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    try:
        with progress:
            run = train_run(dataset, model, output, settings, seed=seed, on_progress=on_progress, overwrite=overwrite)
        console.print(f"run written to [bold]{run}[/bold]")
        if evaluate:
            console.print(_headline(evaluate_run(run, "test"), f"{model} on {dataset}"))
    except (DatasetError, RunError, ModelError, ValueError, OSError) as error:
        fail(str(error))


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="A run directory written by `etbert train`."),
    split: str = typer.Option("test", help="train, val or test."),
    packets: Optional[int] = typer.Option(None, help="Use only each flow's first N packets (early identification)."),
    early: bool = typer.Option(False, help="Accuracy and F1 for every N = 1..K packets (writes early-<split>.json)."),
) -> None:
    """Score a run on a split: accuracy, macro precision/recall/F1, per class (writes metrics.json)."""
    from etbert.evaluation.evaluate import early_curve, evaluate_run
    from etbert.evaluation.runs import RunError
    from etbert.models.base import ModelError

    if split not in ("train", "val", "test"):
        fail(f"unknown split {split!r}; choose train, val or test")
    try:
        if early:
            curve = early_curve(run, split)
            table = Table(title=f"early identification: {curve['model']} on {curve['split']} "
                                f"({curve['split_type']} split, anonymize {curve['anonymize']})", title_justify="left")
            for column in ("packets", "AC", "PR", "RC", "F1"):
                table.add_column(column, justify="right")
            for point in curve["points"]:
                table.add_row(str(point["packets"]), *(f"{point[key]:.4f}" for key in
                                                       ("accuracy", "macro_precision", "macro_recall", "macro_f1")))
            console.print(table)
            return
        metrics = evaluate_run(run, split, packets)
    except (RunError, ModelError, ValueError, OSError) as error:
        fail(str(error))
    suffix = f", first {packets} packets" if packets else ""
    console.print(_headline(metrics, f"{metrics['model']} ({run}{suffix})"))
    per_class = Table("class", "precision", "recall", "F1", "support", title="per class", title_justify="left")
    for name, values in metrics["per_class"].items():
        per_class.add_row(name, *(f"{values[key]:.4f}" for key in ("precision", "recall", "f1")),
                          str(values["support"]))
    console.print(per_class)
    if "binary" in metrics:
        b = metrics["binary"]
        console.print(f"{b['positive']} vs {b['negative']}: precision {b['precision']:.4f} recall {b['recall']:.4f} "
                      f"specificity {b['specificity']:.4f} NPV {b['npv']:.4f}")
    if "packet_level" in metrics:
        console.print(_headline({**metrics, **metrics["packet_level"]}, "packet level"))


@app.command()
def predict(
    run: Path = typer.Argument(..., help="A run directory written by `etbert train`."),
    captures: list[Path] = typer.Argument(..., help="Capture files or folders."),
    output: Path = typer.Option(..., "-o", "--output", help="Predictions, .jsonl or .csv: one line per flow."),
) -> None:
    """Classify every flow of the captures (5-tuple, start time, class, probability, top 3)."""
    from etbert.evaluation.runs import RunError
    from etbert.models.base import ModelError
    from etbert.predict import predict_captures

    for path in captures:
        if not path.exists():
            fail(f"{path} does not exist")
    progress = Progress(TextColumn("[bold]predict[/bold] {task.description}"), TimeElapsedColumn(), console=errors,
                        transient=True)
    task = progress.add_task("", total=None)
    try:
        with progress:
            summary = predict_captures(run, captures, output, on_capture=lambda name: progress.update(task,
                                                                                                    description=name))
    except (RunError, ModelError, ValueError, OSError) as error:
        fail(str(error))
    for problem in summary.problems:
        errors.print(f"[yellow]warning:[/yellow] {problem}", highlight=False)
    if summary.flows == 0:
        fail(f"no flows to classify in {', '.join(map(str, captures))}")
    console.print(f"{summary.flows} flows from {summary.captures} captures -> [bold]{output}[/bold]")


@app.command()
def models() -> None:
    """List the registered models."""
    from etbert.models.registry import model_names

    for name in model_names():
        console.print(name)


@app.command()
def audit(
    dataset: Path = typer.Argument(..., help="A dataset folder written by `etbert prepare`."),
    threshold: float = typer.Option(0.10, help="Macro-F1 gap above which a check is flagged."),
    seed: int = typer.Option(0, help="Seed of the quick models and the random split."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="Also write the findings as JSON."),
) -> None:
    """Train a quick model with and without identity fields, and split by packet vs by flow: print the gaps."""
    from etbert.dataset.layout import DatasetError
    from etbert.evaluation.audit import audit_dataset

    progress = step_progress()
    task = progress.add_task("audit", total=2)
    try:
        with progress:
            report = audit_dataset(dataset, threshold, seed,
                                   on_progress=lambda stage, done, total: progress.update(task, completed=done,
                                                                                          description=stage))
    except (DatasetError, ValueError, OSError) as error:
        fail(str(error))
    table = Table("check", "honest", "F1", "leaky", "F1", "gap", "verdict",
                  title=f"audit of {dataset} ({report.split_type} split, anonymize {report.anonymize})",
                  title_justify="left")
    for check in report.checks:
        verdict = "[red]SHORTCUT[/red]" if check.flagged else "[green]ok[/green]"
        table.add_row(check.name, check.honest, f"{check.honest_f1:.3f}", check.leaky, f"{check.leaky_f1:.3f}",
                      f"{check.gap:+.3f}", verdict)
    console.print(table)
    for check in report.checks:
        if check.note:
            console.print(f"{check.name}: {check.note}")
    for check in report.checks:
        if not check.flagged:
            continue
        if check.name == "packet split" and report.split_type in ("flow", "capture", "time"):
            console.print(f"[yellow]A per-packet random split would report {check.leaky_f1:.2f} macro F1 instead of "
                          f"{check.honest_f1:.2f}; this dataset is split by {report.split_type}, which prevents "
                          "that inflation.[/yellow]")
        else:
            console.print(f"[red]{check.name}: a gap of {check.gap:+.2f} macro F1: numbers on this data can come from "
                          "shortcuts, not from the traffic's behaviour.[/red]")
    if output:
        import json

        output.write_text(json.dumps(report.to_dict(), indent=2))


@app.command()
def compare(
    runs: list[Path] = typer.Argument(..., help="Run directories written by `etbert train`."),
    split: str = typer.Option("test", help="Which evaluation to compare: train, val or test."),
) -> None:
    """Runs side by side: AC, PR, RC, F1 (macro) with each run's dataset, split type and anonymisation."""
    from etbert.evaluation.runs import RunError
    from etbert.report.compare import comparison_rows, comparison_table, mixed_protocols

    try:
        rows = comparison_rows(runs, split)
    except RunError as error:
        fail(str(error))
    console.print(comparison_table(rows))
    mixed = mixed_protocols(rows)
    if mixed:
        console.print(f"[yellow]warning:[/yellow] these runs differ in {', '.join(mixed)}: "
                      "their numbers are not directly comparable")
    missing = [row["run"] for row in rows if not row["evaluated"]]
    if missing:
        console.print(f"not evaluated on {split}: {', '.join(map(str, missing))} (run `etbert evaluate RUN`)")
