"""What every command module shares: the typer app, the consoles, and the one way to fail."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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


def settings_from(config: Optional[Path], overrides: list[str]) -> dict:
    """Model settings from a JSON/TOML file, then `--set key=value` pairs on top."""
    settings: dict = {}
    if config is not None:
        try:
            text = config.read_text()
            settings = tomllib.loads(text) if config.suffix == ".toml" else json.loads(text)
        except (OSError, ValueError) as error:
            fail(f"cannot read settings from {config}: {error}")
        if not isinstance(settings, dict):
            fail(f"{config} must hold a table of settings")
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--set expects key=value, not {item!r}")
        settings[key.strip().replace("-", "_")] = value.strip()
    return settings


def step_progress() -> Progress:
    """A transient bar on stderr for steps of known count (epochs, folds, batches)."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=errors, transient=True)


@app.command()
def version() -> None:
    """Print the etbert version."""
    console.print(__version__)
