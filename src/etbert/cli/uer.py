"""The authors' checkpoints: convert-uer."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from etbert.cli.common import app, console, errors, fail


@app.command("convert-uer")
def convert_uer(
    checkpoint: Path = typer.Argument(..., help="An ET-BERT (UER-py) state dict, e.g. pretrained_model.bin."),
    vocab: Path = typer.Option(..., "--vocab", help="The vocab it was trained with, e.g. encryptd_vocab.txt."),
    output: Path = typer.Option(..., "-o", "--output", help="Pre-trained model folder to write."),
    heads: Optional[int] = typer.Option(None, help="Attention heads (not stored in the file); default hidden/64."),
) -> None:
    """Convert an official ET-BERT checkpoint into a Hugging Face pre-trained model folder."""
    from etbert.models.etbert.uer import UerError, convert_uer_checkpoint

    try:
        summary = convert_uer_checkpoint(checkpoint, vocab, output, heads=heads)
    except (UerError, OSError) as error:
        fail(str(error))
    shape = summary.shape
    console.print(f"{shape.layers} layers, hidden {shape.hidden_size}, {summary.heads} heads, "
                  f"feed-forward {shape.intermediate_size}, vocab {shape.vocab_size}, "
                  f"{shape.max_positions} positions; MLM decoder {'tied' if summary.tied else 'untied'}")
    if summary.ignored:
        shown = ", ".join(summary.ignored[:5]) + (f" and {len(summary.ignored) - 5} more"
                                                  if len(summary.ignored) > 5 else "")
        errors.print(f"[yellow]ignored[/yellow] tensors BERT has no place for: {shown}", markup=True,
                     highlight=False)
    console.print(f"model written to [bold]{output}[/bold]")
