"""Commands over several runs: the HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from etbert.cli.common import app, console, fail


@app.command()
def report(
    runs: Optional[list[Path]] = typer.Argument(None, metavar="RUN", help="Run directories written by `etbert train`."),
    output: Path = typer.Option(..., "-o", "--output", help="HTML file to write (self-contained)."),
    split: str = typer.Option("test", help="Evaluated split to show: train, val or test."),
) -> None:
    """Write one self-contained HTML page: datasets, comparison, per-class F1, confusion matrices, early curves."""
    from etbert.evaluation.runs import RunError
    from etbert.report.html import write_report

    if not runs:
        fail("no runs given: etbert report RUN... -o report.html")
    if split not in ("train", "val", "test"):
        fail(f"unknown split {split!r}; choose train, val or test")
    try:
        write_report(runs, output, split)
    except RunError as error:
        fail(str(error))
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror or error}")
    console.print(f"report on {len(runs)} run(s) written to [bold]{output}[/bold]")
