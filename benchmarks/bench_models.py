"""Train time, prediction throughput, saved size and test scores of registered models on one dataset.

    .venv/bin/python benchmarks/bench_models.py [--dataset DATASET] [--models NAME ...] [--set NAME:KEY=VALUE ...]
                                                [--seed N] [--min-seconds S]

DATASET is a prepared dataset; by default the bundled lab corpus (data/lab-default) is prepared with the
defaults into a temporary folder. Models are any names in the registry; by default the majority-class
floor and the classic learners. ``--set svm:C=3`` passes a setting to one model. Throughput is flows per
second through ``predict_proba`` from the flow table (features included) over every split of the dataset,
repeated until ``--min-seconds`` have passed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from etbert.dataset.prepare import PrepareConfig, prepare
from etbert.evaluation.metrics import classification_metrics
from etbert.evaluation.train import labelled_flows
from etbert.models.base import seed_everything
from etbert.models.registry import MODELS, create_model, model_names

REPO = Path(__file__).resolve().parents[1]
CLASSIC_MODULE = "etbert.models.classic"


def default_models() -> list[str]:
    """The majority floor and every learner of the classic module, without importing the others."""
    return ["majority", *(name for name in model_names() if MODELS[name].split(":")[0] == CLASSIC_MODULE)]


def parse_settings(pairs: list[str]) -> dict[str, dict[str, str]]:
    settings: dict[str, dict[str, str]] = {}
    for pair in pairs:
        model, _, assignment = pair.partition(":")
        key, equals, value = assignment.partition("=")
        if not (model and key and equals):
            raise SystemExit(f"--set expects NAME:KEY=VALUE, not {pair!r}")
        settings.setdefault(model, {})[key] = value
    return settings


def directory_size(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def measure(name: str, settings: dict[str, str], dataset: Path, seed: int, min_seconds: float, scratch: Path) -> dict:
    model = create_model(name, settings)
    splits = {split: labelled_flows(dataset, split, model.columns) for split in ("train", "val", "test")}
    start = time.perf_counter()
    model.fit(splits["train"], splits["val"], seed=seed)
    train_seconds = time.perf_counter() - start
    everything = pa.concat_tables(splits.values())
    predicted, start = 0, time.perf_counter()
    while predicted == 0 or time.perf_counter() - start < min_seconds:
        model.predict_proba(everything)
        predicted += everything.num_rows
    throughput = predicted / (time.perf_counter() - start)
    model.save(scratch / name)
    test = splits["test"]
    scores = classification_metrics(test.column("label").to_pylist(), model.predict(test), model.classes_)
    return {"train_s": train_seconds, "flows_per_s": throughput, "size": directory_size(scratch / name),
            "macro_f1": scores["macro_f1"], "accuracy": scores["accuracy"], "train_flows": splits["train"].num_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, help="a prepared dataset (default: the lab corpus, prepared)")
    parser.add_argument("--models", nargs="+", choices=model_names(), default=default_models(), metavar="NAME")
    parser.add_argument("--set", dest="settings", nargs="*", default=[], metavar="NAME:KEY=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="least time spent measuring throughput")
    args = parser.parse_args()
    settings = parse_settings(args.settings)
    console = Console(width=max(Console().width, 110))  # the full table even when piped
    seed_everything(args.seed)  # its one-off imports (PyTorch) outside the first model's timing
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        dataset = args.dataset
        if dataset is None:
            dataset = scratch / "lab-default"
            prepare(REPO / "data" / "lab-default", dataset, PrepareConfig())
        table = Table(title=f"models on {args.dataset or 'data/lab-default (prepared with the defaults)'} "
                            f"({os.cpu_count()} CPUs, seed {args.seed})")
        for column in ("model", "train flows", "train s", "predict flows/s", "saved bytes", "test macro F1",
                       "test accuracy"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for name in args.models:
            console.print(f"[dim]{name}...[/dim]")
            result = measure(name, settings.get(name, {}), dataset, args.seed, args.min_seconds, scratch)
            table.add_row(name, str(result["train_flows"]), f"{result['train_s']:.2f}",
                          f"{result['flows_per_s']:,.0f}", f"{result['size']:,}", f"{result['macro_f1']:.3f}",
                          f"{result['accuracy']:.3f}")
        console.print(table)


if __name__ == "__main__":
    main()
