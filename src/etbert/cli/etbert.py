"""ET-BERT's own commands: vocab, pretrain (fine-tuning goes through `etbert train --model etbert-flow`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from etbert.cli.common import app, console, errors, fail


@app.command()
def vocab(
    corpus: Optional[list[Path]] = typer.Argument(
        None, help="Prepared datasets (their train split) or captures; none: the full bigram vocabulary."),
    output: Path = typer.Option(..., "-o", "--output", help="vocab.txt to write."),
    size: int = typer.Option(65536, help="Most tokens of a trained WordPiece vocabulary (specials included)."),
    min_frequency: int = typer.Option(2, help="Fewest occurrences of a bigram that becomes a token."),
    payload_only: bool = typer.Option(False, help="Tokens from transport payloads only."),
    packet_bytes: int = typer.Option(128, help="Bytes of each packet read."),
) -> None:
    """Write an ET-BERT vocabulary: WordPiece trained on a corpus's bigrams, or all 65,536 bigrams."""
    from etbert.models.etbert.corpus import CorpusError, read_corpus
    from etbert.models.etbert.tokens import TokenOptions, corpus_texts
    from etbert.models.etbert.vocab import VocabError, bigram_vocab, train_vocab, write_vocab

    try:
        if corpus:
            options = TokenOptions(payload_only=payload_only, max_packet_bytes=packet_bytes)
            tokens = train_vocab(corpus_texts(read_corpus(corpus), options), size, min_frequency)
        else:
            tokens = bigram_vocab()
        write_vocab(tokens, output)
    except (CorpusError, VocabError, ValueError, OSError) as error:
        fail(str(error))
    console.print(f"{len(tokens)} tokens written to [bold]{output}[/bold]")


@app.command()
def pretrain(
    corpus: list[Path] = typer.Argument(..., help="Prepared datasets (their train split only) or captures."),
    output: Path = typer.Option(..., "-o", "--output", help="Model folder (checkpoints and log go inside)."),
    config: str = typer.Option("small", "--config", help="Model size: small (CPU-friendly), base (BERT-base), tiny."),
    max_steps: int = typer.Option(1000, help="Optimiser steps."),
    batch_size: int = typer.Option(32, help="Documents (bursts) per step."),
    lr: float = typer.Option(5e-4, help="Peak learning rate (linear warm-up over 10% of the steps, then decay)."),
    seq_length: int = typer.Option(128, help="Tokens per document, [CLS] and [SEP]s included (at most 512)."),
    vocab: Optional[Path] = typer.Option(None, help="A vocab.txt; default: the full bigram vocabulary."),
    payload_only: bool = typer.Option(False, help="Tokens from transport payloads only."),
    packet_bytes: int = typer.Option(128, help="Bytes of each packet in a burst."),
    mlm_weight: float = typer.Option(0.1, help="Weight of the Masked BURST Model loss (official: 0.1)."),
    sbp_weight: float = typer.Option(1.0, help="Weight of the Same-origin BURST Prediction loss."),
    include_val: bool = typer.Option(False, help="Also pre-train on a dataset's validation split."),
    checkpoint_every: int = typer.Option(100, help="Steps between checkpoints."),
    seed: int = typer.Option(0, help="Seed of initialisation, data order and masking."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    precision: str = typer.Option("auto", help="auto (bf16 autocast where the GPU or CPU does bf16 natively), fp32 "
                                  "or bf16."),
    resume: bool = typer.Option(False, help="Continue the run in OUTPUT from its last checkpoint (its settings)."),
) -> None:
    """Pre-train ET-BERT: Masked BURST Model + Same-origin BURST Prediction over a corpus's bursts."""
    from etbert.models.etbert.corpus import CorpusError
    from etbert.models.etbert.pretrain import PretrainConfig, PretrainError
    from etbert.models.etbert.pretrain import pretrain as run_pretrain
    from etbert.models.etbert.vocab import VocabError

    try:
        settings = PretrainConfig(size=config, vocab=str(vocab or ""), seq_length=seq_length, batch_size=batch_size,
                                  lr=lr, max_steps=max_steps, mlm_weight=mlm_weight, sbp_weight=sbp_weight,
                                  checkpoint_every=checkpoint_every, seed=seed, payload_only=payload_only,
                                  max_packet_bytes=packet_bytes, include_val=include_val,
                                  precision=precision)
    except ValueError as error:
        fail(str(error))
    progress = Progress(TextColumn("[bold]pretrain"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]:.3f} MLM acc {task.fields[mlm]:.3f} SBP acc {task.fields[sbp]:.3f}"),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=errors, transient=True)
    task = progress.add_task("pretrain", total=None, loss=float("nan"), mlm=float("nan"), sbp=float("nan"))

    def on_step(step: int, total: int, metrics: dict) -> None:
        progress.update(task, completed=step, total=total, loss=metrics["loss"], mlm=metrics["mlm_accuracy"],
                        sbp=metrics["sbp_accuracy"])

    try:
        with progress:
            summary = run_pretrain(corpus, output, settings, device=device, resume=resume, on_step=on_step)
    except (PretrainError, CorpusError, VocabError, ValueError, OSError) as error:
        fail(str(error))
    if "loss" in summary:
        console.print(f"{summary['steps']} steps over {summary['bursts']} bursts; last interval: loss "
                      f"{summary['loss']:.4f}, MLM accuracy {summary['mlm_accuracy']:.3f}, SBP accuracy "
                      f"{summary['sbp_accuracy']:.3f}, {summary['tokens_per_second']:.0f} tokens/s")
    console.print(f"model written to [bold]{output}[/bold] (log: {output / 'pretrain.log'})")
