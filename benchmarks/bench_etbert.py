"""ET-BERT speed on this machine: inference, fine-tuning and pre-training throughput, peak memory.

    .venv/bin/python benchmarks/bench_etbert.py [--sizes small base] [--threads 2] [--quick]

Models have random weights (speed does not depend on them) and the shapes of the presets in
etbert.models.etbert.pretrained (vocab of 65,541 bigram tokens, 512 positions, 12 classes). Measured:

- inference, flows/s at batch 1 and 64 for sequences of 512 tokens (flow level) and 128 (packet level), in
  PyTorch (eval, inference_mode; fp32, bf16 autocast as etbert's `precision=auto` on bf16 hardware, and
  dynamic int8 quantisation of the linear layers) and ONNX Runtime (fp32 and int8; `pip install -e .[bench]`,
  skipped when not installed); plus the median batch-1 latency;
- fine-tuning samples/s (BertForSequenceClassification, AdamW steps) and pre-training tokens/s
  (BertForPreTraining with MLM + NSP labels, AdamW steps);
- the peak resident memory of each of these, each run in its own fresh process (the ONNX export too, so
  an ONNX row's memory is that of the runtime session alone).

Every figure uses --threads CPU threads (default 2). Rates come from the median step time, so a few
steps slowed by other processes do not dominate; batch-1 latency is given as median and best. Figures vary
with the machine's load (the load average at the start is printed with the tables). OMP_WAIT_POLICY is
PASSIVE unless set otherwise: with OpenMP's default spinning, PyTorch's two threads on two busy cores
stalled a batch-1 forward pass from about 1 ms to 400 ms here.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import resource
import statistics
import tempfile
import time
import warnings
from pathlib import Path

CLASSES = 12
SEQUENCES = (512, 128)  # flow level (several packets), packet level
BATCHES = (1, 64)
TRAIN_SEQUENCE = 128


def measure(step, seconds: float, min_runs: int = 3) -> list[float]:
    """Durations of ``step()`` after one warm-up call, repeated for ``seconds`` (at least ``min_runs`` times)."""
    step()
    durations: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(durations) < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        step()
        durations.append(time.perf_counter() - start)
    return durations


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bert_config(size: str, **extra):
    from transformers import BertConfig

    from etbert.models.etbert.pretrained import MAX_POSITIONS, SIZES
    from etbert.models.etbert.vocab import bigram_vocab

    return BertConfig(vocab_size=len(bigram_vocab()), max_position_embeddings=MAX_POSITIONS, type_vocab_size=2,
                      **SIZES[size], **extra)


def random_inputs(batch: int, length: int, vocab: int):
    import torch

    ids = torch.randint(5, vocab, (batch, length))
    ids[:, 0] = 2  # [CLS]
    return ids, torch.ones_like(ids)


def inference_rows(engine: str, size: str, seconds: float, sequences: tuple[int, ...], onnx_dir: str,
                   device: str = "cpu") -> list[dict]:
    """Rows of flows/s (and batch-1 latency) for one engine: torch, torch-int8, onnx, onnx-int8; on a GPU
    torch and torch-bf16 (timed to the end of the GPU's work)."""
    import torch

    if engine.startswith("onnx"):
        predict = onnx_predictor(Path(onnx_dir) / f"{engine}.onnx")
    else:
        from transformers import BertForSequenceClassification

        model = BertForSequenceClassification(bert_config(size, num_labels=CLASSES)).eval()
        if engine == "torch-int8":
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        model = model.to(device)
        # torch-bf16: bf16 autocast over fp32 weights, what etbert's models do by default on hardware with bf16
        precision = torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=engine == "torch-bf16")

        def predict(ids, mask):
            with torch.inference_mode(), precision:
                model(input_ids=ids, attention_mask=mask)
            if device != "cpu":
                torch.cuda.synchronize()
    vocab = bert_config(size).vocab_size
    rows = []
    for length in sequences:
        for batch in BATCHES:
            ids, mask = (tensor.to(device) for tensor in random_inputs(batch, length, vocab))
            durations = measure(lambda: predict(ids, mask), seconds)
            median = statistics.median(durations)
            rows.append({"engine": engine, "seq": length, "batch": batch, "flows/s": batch / median,
                         "latency ms": (median * 1000, min(durations) * 1000) if batch == 1 else None})
    return rows


def export_onnx(size: str, onnx_dir: str) -> list[dict]:
    """Write onnx.onnx (dynamic batch and length) and its int8 twin onnx-int8.onnx; no rows."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification(bert_config(size, num_labels=CLASSES)).eval()
    path = Path(onnx_dir) / "onnx.onnx"
    axes = {0: "batch", 1: "sequence"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(model, random_inputs(1, 16, model.config.vocab_size), path,
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes={"input_ids": axes, "attention_mask": axes}, dynamo=False)
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's advice to pre-process the graph first
    quantize_dynamic(path, path.with_name("onnx-int8.onnx"), weight_type=QuantType.QInt8)
    return []


def onnx_predictor(path: Path):
    import onnxruntime
    import torch

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def predict(ids, mask):
        session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    return predict


def training_rows(task: str, size: str, seconds: float, batch: int, length: int, device: str = "cpu",
                  precision: str = "auto") -> list[dict]:
    """Samples/s and tokens/s of AdamW steps: fine-tuning a classifier, or pre-training as `etbert pretrain`
    steps (MBM on 15% of the tokens, vocabulary projection on those only, + SBP); ``precision`` as etbert's setting."""
    import torch
    from transformers import BertForPreTraining, BertForSequenceClassification

    from etbert.models.etbert.pretrain import IGNORE, pretraining_losses
    from etbert.models.devices import autocast

    target = torch.device(device)
    if task == "fine-tune":
        config = bert_config(size, num_labels=CLASSES)
        model = BertForSequenceClassification(config).to(target)
        ids, mask = (tensor.to(target) for tensor in random_inputs(batch, length, config.vocab_size))
        labels = torch.randint(0, CLASSES, (batch,), device=target)

        def loss():
            return model(input_ids=ids, attention_mask=mask, labels=labels).loss
    else:
        config = bert_config(size)
        model = BertForPreTraining(config).to(target)
        ids, mask = (tensor.to(target) for tensor in random_inputs(batch, length, config.vocab_size))
        types = torch.zeros_like(ids)
        masked = torch.rand(batch, length, device=target) < 0.15
        mlm_labels = torch.where(masked, ids, torch.full_like(ids, IGNORE))
        same_origin = torch.randint(0, 2, (batch,), device=target)

        def loss():
            losses = pretraining_losses(model, ids, types, mask, mlm_labels, same_origin)
            return 0.1 * losses["mlm_loss"] + losses["sbp_loss"]
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad()
        with autocast(target, precision):
            value = loss()
        value.backward()
        optimizer.step()
        if target.type == "cuda":
            torch.cuda.synchronize()
    rate = batch / statistics.median(measure(step, seconds, min_runs=2))
    return [{"task": task, "seq": length, "batch": batch, "samples/s": rate, "tokens/s": rate * length}]


def child(job: tuple, threads: int) -> tuple[list[dict], float]:
    """One measurement in a fresh process, so its peak memory is its own."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    kind, *arguments = job
    run = {"inference": inference_rows, "export": export_onnx, "training": training_rows}[kind]
    rows = run(*arguments)
    if torch.cuda.is_available() and torch.cuda.max_memory_allocated():
        return rows, torch.cuda.max_memory_allocated() / 2**20  # the GPU's peak, where the work ran
    return rows, peak_rss_mb()


def onnx_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["small", "base"], choices=["tiny", "small", "base"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seqs", type=int, nargs="+", default=list(SEQUENCES), help="Inference sequence lengths.")
    parser.add_argument("--engines", nargs="+", default=None,
                        choices=["torch", "torch-int8", "onnx", "onnx-int8", "torch-bf16"],
                        help="default: all on the CPU; torch, torch-bf16 on a GPU")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda to time a GPU (memory is then its peak)")
    parser.add_argument("--no-training", action="store_true", help="Inference only.")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                        help="of the training steps (etbert's setting; auto: bf16 where the hardware has it)")
    parser.add_argument("--quick", action="store_true", help="Short timings (noisier), training batch 8.")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    seconds = 0.5 if args.quick else 3.0
    engines = args.engines or (["torch", "torch-bf16"] if args.device != "cpu" else
                               ["torch", "torch-bf16", "torch-int8", "onnx", "onnx-int8"])
    if not onnx_available() and any(engine.startswith("onnx") for engine in engines):
        engines = [engine for engine in engines if not engine.startswith("onnx")]
        print("onnxruntime/onnx not installed (pip install -e .[bench]): ONNX Runtime rows skipped")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read by the spawned children's OpenMP at start
    console = Console()
    load = os.getloadavg()[0]
    context = multiprocessing.get_context("spawn")
    where = f"device {args.device}" if args.device != "cpu" else f"{args.threads} threads"
    memory = "peak GPU MB" if args.device != "cpu" else "peak RSS MB"
    inference = Table(title=f"ET-BERT inference, {where}, OMP_WAIT_POLICY "
                            f"{os.environ['OMP_WAIT_POLICY']} (load average {load:.1f} at start)")
    for column in ("size", "engine", "seq", "batch", "flows/s", "batch-1 ms median (best)", memory):
        inference.add_column(column, justify="left" if column in ("size", "engine") else "right")
    training = Table(title=f"ET-BERT training steps (AdamW), {where}, precision {args.precision}")
    for column in ("size", "task", "seq", "batch", "samples/s", "tokens/s", memory):
        training.add_column(column, justify="left" if column in ("size", "task") else "right")
    for size in args.sizes:
        onnx_dir = tempfile.TemporaryDirectory(prefix="bench-etbert-")
        jobs = [("export", size, onnx_dir.name)] if any(engine.startswith("onnx") for engine in engines) else []
        jobs += [("inference", engine, size, seconds, tuple(args.seqs), onnx_dir.name, args.device)
                 for engine in engines]
        batch = 8 if args.quick or (size == "base" and args.device == "cpu") else 32
        if not args.no_training:
            jobs += [("training", task, size, seconds, batch, TRAIN_SEQUENCE, args.device, args.precision)
                     for task in ("fine-tune", "pre-train")]
        for job in jobs:
            with context.Pool(1) as pool:
                rows, peak = pool.apply(child, (job, args.threads))
            for row in rows:
                if job[0] == "inference":
                    latency = "{:.1f} ({:.1f})".format(*row["latency ms"]) if row["latency ms"] else ""
                    inference.add_row(size, row["engine"], str(row["seq"]), str(row["batch"]),
                                      f"{row['flows/s']:,.1f}", latency, f"{peak:,.0f}")
                else:
                    training.add_row(size, row["task"], str(row["seq"]), str(row["batch"]),
                                     f"{row['samples/s']:,.2f}", f"{row['tokens/s']:,.0f}", f"{peak:,.0f}")
            console.print(f"[dim]{size} {job[1] if job[0] != 'export' else 'onnx export'} done[/dim]")
        onnx_dir.cleanup()
    console.print(inference)
    if training.row_count:
        console.print(training)


if __name__ == "__main__":
    main()
