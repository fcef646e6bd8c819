"""Commands over captures and datasets: prepare, inspect."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from etbert.cli.common import app, console, errors, fail


@app.command()
def prepare(
    input: Path = typer.Argument(..., help="A capture file or a folder of captures (pcap, pcapng, gzip'd)."),
    output: Path = typer.Option(..., "-o", "--output", help="Dataset folder to write."),
    labels: Optional[str] = typer.Option(
        None, help="Label source: 'folders' (root/<class>/...), 'stem' (file name), or a CSV "
        "(capture,label  or  capture,proto,src,sport,dst,dport,label). Default: folders when captures "
        "sit in subfolders, else unlabelled."),
    split: str = typer.Option("flow", help="flow (no flow in two splits), capture (grouped by file), time."),
    anonymize: str = typer.Option("strict", help="strict, seed-004 or none."),
    fractions: str = typer.Option("0.8,0.1,0.1", help="train,val,test fractions."),
    seed: int = typer.Option(0, help="Seed of splits, sampling and anonymisation."),
    packets: int = typer.Option(10, help="K: packets per flow kept with their bytes."),
    packet_bytes: int = typer.Option(1024, help="Bytes kept per packet, from the IP header on."),
    idle_timeout: float = typer.Option(120.0, help="Seconds without a packet that end a flow."),
    active_timeout: float = typer.Option(1800.0, help="Seconds after which a long flow is cut."),
    max_per_class: Optional[int] = typer.Option(None, help="Cap flows per class (random, seeded)."),
    min_per_class: Optional[int] = typer.Option(None, help="Drop classes with fewer flows."),
    workers: int = typer.Option(1, help="Processes; captures are shared out among them."),
    overwrite: bool = typer.Option(False, help="Replace an existing dataset (only once the new one is complete)."),
) -> None:
    """Read captures into a labelled, anonymised, deduplicated and split flow dataset (Parquet + manifest)."""
    from etbert.dataset.labels import LabelError
    from etbert.dataset.prepare import PrepareConfig, PrepareError
    from etbert.dataset.prepare import prepare as run_prepare
    from etbert.dataset.summary import dataset_summary
    from etbert.flows.meter import MeterConfig

    try:
        split_fractions = tuple(float(x) for x in fractions.split(","))
        if len(split_fractions) != 3:
            raise ValueError("--fractions needs three numbers: train,val,test")
        config = PrepareConfig(
            meter=MeterConfig(idle_timeout=idle_timeout, active_timeout=active_timeout, max_packets=packets,
                              max_packet_bytes=packet_bytes),
            labels=labels, split=split, fractions=split_fractions, anonymize=anonymize, seed=seed,
            max_per_class=max_per_class, min_per_class=min_per_class, workers=workers, overwrite=overwrite,
        )
    except ValueError as error:
        fail(str(error))
    progress = Progress(TextColumn("[bold]prepare"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                        console=errors, transient=True)
    task = progress.add_task("prepare", total=None)
    try:
        with progress:
            manifest = run_prepare(input, output, config,
                                   on_progress=lambda done, total: progress.update(task, completed=done, total=total))
    except (PrepareError, LabelError, ValueError, OSError) as error:
        fail(str(error))
    console.print(dataset_summary(manifest))
    console.print(f"dataset written to [bold]{output}[/bold]")


@app.command()
def inspect(dataset: Path = typer.Argument(..., help="A dataset folder written by `etbert prepare`.")) -> None:
    """Print the summary of a prepared dataset again."""
    from etbert.dataset.layout import DatasetError, read_manifest
    from etbert.dataset.summary import dataset_summary

    try:
        manifest = read_manifest(dataset)
    except DatasetError as error:
        fail(str(error))
    console.print(dataset_summary(manifest))

