"""`etbert lab`: list the traffic classes this machine can generate, and generate a labelled capture tree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from etbert.lab.classes import ALL_CLASSES
from etbert.lab.cleanup import LabInterrupted
from etbert.lab.generate import GenerateOptions, availability, generate, select_classes
from etbert.lab.netns import LabSetupError, host_unavailable
from etbert.lab.plan import DEFAULT_CAPTURES_PER_CLASS

app = typer.Typer(help="Traffic lab: real encrypted protocols between network namespaces, captured and labelled.", no_args_is_help=True)
console = Console(stderr=True)


@app.command("list")
def list_classes() -> None:
    """Show every traffic class and whether it can run on this machine (and why not)."""
    table = Table("class", "available", "description")
    for name, reason in availability().items():
        table.add_row(name, "[green]yes[/]" if reason is None else f"[red]no[/]: {reason}", ALL_CLASSES[name].description)
    Console().print(table)


@app.command("generate")
def generate_command(
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Output folder: <class>/<class>-<i>.pcap and manifest.json.")],
    classes: Annotated[Optional[str], typer.Option(help="Comma-separated classes (default: every available one).")] = None,
    flows_per_class: Annotated[int, typer.Option(min=1, help="Flows planned per class.")] = 40,
    captures_per_class: Annotated[
        int, typer.Option(min=1, help="Capture files (tcpdump sessions) per class, each with a contiguous share of its flows.")
    ] = DEFAULT_CAPTURES_PER_CLASS,
    seed: Annotated[int, typer.Option(help="Seed of the workload plan and address plan.")] = 0,
    size_scale: Annotated[float, typer.Option(min=0.0001, help="Multiplies planned transfer sizes (small corpora: 0.01).")] = 1.0,
    netem: Annotated[Optional[str], typer.Option(help="tc-netem arguments for both link ends, e.g. 'delay 20ms 5ms loss 0.5%'.")] = None,
    parallel: Annotated[int, typer.Option(min=1, help="Flows run at once within a class.")] = 8,
    force: Annotated[bool, typer.Option(help="Replace an earlier lab output in the output folder.")] = False,
) -> None:
    """Generate labelled captures of real traffic (needs root)."""
    if classes:
        try:
            select_classes(classes.split(","))  # a typo is reported before anything about the host
        except ValueError as error:
            console.print(f"[red]etbert lab:[/] {error}")
            raise typer.Exit(2) from None
    reason = host_unavailable()
    if reason:
        console.print(f"[red]etbert lab:[/] {reason}")
        raise typer.Exit(2)
    names = tuple(classes.split(",")) if classes else tuple(name for name, why in availability().items() if why is None)
    options = GenerateOptions(
        out_dir, names, flows_per_class=flows_per_class, captures_per_class=captures_per_class, seed=seed, size_scale=size_scale,
        netem=netem, parallel=parallel, force=force,
    )  # fmt: skip
    columns = (TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress:
            tasks = {name: progress.add_task(name, total=flows_per_class) for name in names}
            manifest = generate(options, lambda name, done, total: progress.update(tasks[name], completed=done))
    except (LabSetupError, ValueError) as error:
        console.print(f"[red]etbert lab:[/] {error}")
        raise typer.Exit(2) from None
    except (KeyboardInterrupt, LabInterrupted) as error:
        console.print(f"[yellow]etbert lab: interrupted ({str(error) or 'Ctrl-C'}); namespaces and processes removed, finished classes kept[/]")
        raise typer.Exit(130) from None
    table = Table("class", "flows ok", "captures", "connections", "packets", "MB", "seconds")
    for record in manifest.classes:
        ok = record.flows_planned - record.flows_failed
        counts = (len(record.captures), record.connections, record.packets)
        table.add_row(record.name, f"{ok}/{record.flows_planned}", *map(str, counts), f"{record.bytes / 1e6:.2f}", f"{record.seconds:.1f}")
    Console().print(table)
    for name, why in manifest.unavailable.items():
        console.print(f"[yellow]skipped {name}:[/] {why}")
    for record in manifest.classes:
        for flow in record.flows:
            if flow.error:
                console.print(f"[yellow]{record.name} flow {flow.index}:[/] {flow.error}")
    console.print(f"wrote {out_dir / 'manifest.json'}")
