"""What every command module shares: the typer app, the consoles, and the one way to fail."""

from __future__ import annotations

import sys
from typing import NoReturn

import typer
from rich.console import Console

from etbert import __version__
from etbert.lab.cli import app as lab_app

app = typer.Typer(help="Encrypted traffic classification: captures in, honest datasets and models out.",
                  no_args_is_help=True, add_completion=False)
app.add_typer(lab_app, name="lab", help="Generate labelled captures of real encrypted protocols (needs root).")
# Piped output (files, CI logs) is read later in wide windows: tables there are not squeezed to 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, soft_wrap=True)  # an error stays one line, however long


def fail(message: str) -> NoReturn:
    errors.print(f"[red]error:[/red] {message}", markup=True, highlight=False)
    raise typer.Exit(2)


@app.command()
def version() -> None:
    """Print the etbert version."""
    console.print(__version__)
