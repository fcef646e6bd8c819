"""Speed of the deep models at prediction: per-flow latency (batch 1) and throughput (batch 256).

    .venv/bin/python benchmarks/bench_deep.py [MODEL ...] [--device cpu|cuda|auto] [--repeat N] [--threads T]

Each model is trained for one epoch on the bundled lab corpus (prediction speed does not depend on the
weights), then timed on its test flows through `predict_proba`, the whole path from a flow table to
probabilities: feature extraction, the network, the softmax. Latency: median over ``--repeat`` calls with
one flow; throughput: flows per second over calls with 256 flows. Models add themselves to ``BENCHMARKS``
with their settings and any extra figures (e.g. the network alone).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
from timing import timed_calls

from etbert.dataset.layout import read_flows
from etbert.dataset.prepare import PrepareConfig, prepare
from etbert.models.base import FlowModel
from etbert.models.registry import create_model

REPO = Path(__file__).resolve().parents[1]
LAB_CORPUS = REPO / "data" / "lab-default"
THROUGHPUT_BATCH = 256


def tile(flows: pa.Table, rows: int) -> pa.Table:
    """``rows`` flows, the test flows repeated as often as needed."""
    return flows.take(np.arange(rows) % flows.num_rows)


def prediction_speed(model: FlowModel, flows: pa.Table, repeat: int) -> dict:
    one = flows.slice(0, 1)
    batch = tile(flows, THROUGHPUT_BATCH)
    latency = timed_calls(lambda: model.predict_proba(one), repeat)
    throughput = timed_calls(lambda: model.predict_proba(batch), max(repeat // 10, 3))
    return {"latency_ms": 1e3 * statistics.median(latency),
            "flows_per_s": THROUGHPUT_BATCH / statistics.median(throughput)}


def bench_handshake_cnn(train: pa.Table, test: pa.Table, device: str, repeat: int, precision: str) -> dict:
    """handshake-cnn end to end, and its network alone on ready images (what the paper's 0.1 ms counts)."""
    import torch

    from etbert.models.devices import autocast
    from etbert.models.handshake_cnn import image_batch

    model = create_model("handshake-cnn", {"epochs": 1, "device": device, "precision": precision}).fit(train, seed=0)
    figures = prediction_speed(model, test, repeat)
    network = model.network_
    images = model.images(tile(test, THROUGHPUT_BATCH), np.random.default_rng(0))
    device_of = next(network.parameters()).device

    def forward(batch: np.ndarray) -> None:
        with torch.inference_mode(), autocast(device_of, precision):
            network(image_batch(batch, device_of)).cpu()

    figures["network_latency_ms"] = 1e3 * statistics.median(timed_calls(lambda: forward(images[:1]), repeat))
    figures["network_flows_per_s"] = THROUGHPUT_BATCH / statistics.median(
        timed_calls(lambda: forward(images), max(repeat // 10, 3)))
    figures["images_per_s"] = THROUGHPUT_BATCH / statistics.median(
        timed_calls(lambda: model.images(tile(test, THROUGHPUT_BATCH), np.random.default_rng(0)), 10))
    figures["device"] = str(device_of)
    return figures


def bench_lstm_attention(train: pa.Table, test: pa.Table, device: str, repeat: int, precision: str) -> dict:
    """lstm-attention (defaults: N=6, M=128) end to end, and its contextual byte embedding (the LM) alone.

    Trained on every eighth training flow for one LM and one classifier epoch: the speed is the same.
    """
    import torch

    model = create_model("lstm-attention", {"lm_epochs": 1, "epochs": 1, "device": device})
    model.fit(train.take(np.arange(0, train.num_rows, 8)), seed=0)
    figures = prediction_speed(model, test, repeat)
    network = model.network_
    device_of = next(network.parameters()).device
    tokens = model.tokens(tile(test, THROUGHPUT_BATCH)).to(device_of)

    def embed(batch: torch.Tensor) -> None:
        with torch.inference_mode():
            network.embedding(batch).cpu()

    figures["embedding_latency_ms"] = 1e3 * statistics.median(timed_calls(lambda: embed(tokens[:1]), repeat))
    figures["embedding_flows_per_s"] = THROUGHPUT_BATCH / statistics.median(
        timed_calls(lambda: embed(tokens), max(repeat // 10, 3)))
    figures["device"] = str(device_of)
    return figures


BENCHMARKS: dict[str, Callable[[pa.Table, pa.Table, str, int], dict]] = {
    "handshake-cnn": bench_handshake_cnn,
    "lstm-attention": bench_lstm_attention,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # checked by hand: Python 3.11's argparse rejects an empty list against choices
    parser.add_argument("models", nargs="*", help=f"any of {', '.join(sorted(BENCHMARKS))} (default: all)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                        help="handshake-cnn's precision setting (lstm-attention runs in fp32: its LSTMs gain nothing)")
    args = parser.parse_args()
    unknown = sorted(set(args.models) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        prepare(LAB_CORPUS, Path(tmp) / "lab", PrepareConfig())
        train, test = (read_flows(Path(tmp) / "lab", split=split) for split in ("train", "test"))
    for name in args.models or sorted(BENCHMARKS):
        figures = BENCHMARKS[name](train, test, args.device, args.repeat, args.precision)
        print(f"\n{name}")
        for key, value in figures.items():
            print(f"  {key:22} {value:12,.3f}" if isinstance(value, float) else f"  {key:22} {value:>12}")


if __name__ == "__main__":
    main()
