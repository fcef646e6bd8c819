"""The handshake CNN paper's experiment: accuracy, precision and recall against the random-image ratio R."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from etbert.cli.common import app, console, fail, settings_from, step_progress

MODEL = "handshake-cnn"


@app.command("handshake-sweep")
def handshake_sweep(
    dataset: Path = typer.Argument(..., help="A dataset folder written by `etbert prepare`."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for sweep.json and sweep.png."),
    ratios: str = typer.Option("0,0.05,0.11,0.25,0.5,1", help="Ratios R of random to real background images."),
    classes: str = typer.Option("shadowsocks,v2ray,background", help="Classes kept, comma-separated ('': all)."),
    folds: Optional[int] = typer.Option(None, help="k-fold cross-validation over all flows instead of train/test."),
    others: bool = typer.Option(False, "--others-as-background",
                                help="Also test on the other classes' flows (never trained on) labelled background."),
    config: Optional[Path] = typer.Option(None, "--config", help="Model settings, JSON or TOML."),
    set_: list[str] = typer.Option([], "--set", help="One setting, key=value (repeatable), e.g. epochs=30."),
    seed: int = typer.Option(0, help="Seed of folds and training."),
) -> None:
    """Train handshake-cnn at each ratio R of random background images and plot the metrics against R."""
    from etbert.dataset.layout import DatasetError
    from etbert.evaluation.runs import RunError
    from etbert.evaluation.sweep import PLOT_FILE, SWEEP_FILE, setting_sweep
    from etbert.models.base import ModelError

    try:
        values = [float(ratio) for ratio in ratios.split(",")]
    except ValueError:
        fail(f"--ratios expects comma-separated numbers, not {ratios!r}")
    settings = settings_from(config, set_)
    progress = step_progress()
    task = progress.add_task("sweep", total=None)

    def on_progress(stage: str, done: int, total: int | None) -> None:
        progress.update(task, description=stage, completed=done, total=total)

    try:
        with progress:
            result = setting_sweep(dataset, MODEL, "random_ratio", values, output,
                                   classes=[name for name in classes.split(",") if name],
                                   others=settings.get("background_class", "background") if others else None,
                                   folds=folds, settings=settings, seed=seed, on_progress=on_progress)
    except (DatasetError, RunError, ModelError, ValueError, OSError) as error:
        fail(str(error))
    spread = bool(folds)
    keys = ["accuracy", "macro_precision", "macro_recall", "macro_f1"] + (
        ["known_macro_f1", "others_recall"] if others else [])
    table = Table(title=f"{MODEL} on {dataset}: {', '.join(result['classes'])}"
                        + (f", {folds}-fold CV" if folds else ", test split"), title_justify="left")
    for column in ("R", "AC", "PR", "RC", "F1", "F1 known", "unseen->bg")[:len(keys) + 1]:
        table.add_column(column, justify="right")
    for point in result["points"]:
        table.add_row(f"{point['value']:g}", *(
            f"{point[key]:.4f}" + (f" ± {point[key + '_std']:.4f}" if spread else "")
            for key in keys))
    console.print(table)
    console.print(f"written: [bold]{Path(output) / SWEEP_FILE}[/bold], [bold]{Path(output) / PLOT_FILE}[/bold]")
