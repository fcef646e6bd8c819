"""The ET-BERT quality bar: does pre-training help? etbert-flow fine-tuned from a pre-trained small model
against the same model trained from scratch, on the bundled lab corpus.

    .venv/bin/python benchmarks/etbert_quality.py [--work DIR] [--pretrain-steps 1000] [--seeds 0 1 2 3 4]
        [--no-payload-only] [--mlm-weight 1.0] [--epochs 10] [--seq-length 128] [--lr LR]

1. prepares the lab corpus with the defaults (strict anonymisation, flow split) into WORK/dataset;
2. pre-trains a small model (4 layers, 256 hidden) on the training split only, into WORK/pretrained
   (a killed run resumes from its last checkpoint when the script is started again; a finished one is
   reused, so more seeds can be run later);
3. fine-tunes etbert-flow both ways with the same settings and seeds, keeps each run's best epoch on val,
   and prints test macro F1 per seed and the means.

Defaults are what docs/etbert.md reports: payload bytes in both stages (under strict anonymisation the
first bytes of every header are mostly pseudonyms), MLM + SBP with equal weights, sequences of 128 tokens
(five packets x 25 tokens: CPU-sized, where the model's default is 512).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from sklearn.metrics import f1_score

from etbert.dataset.layout import read_flows
from etbert.dataset.prepare import PrepareConfig, prepare
from etbert.models.etbert.pretrain import PretrainConfig, pretrain
from etbert.models.registry import create_model

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / "data" / "lab-default")
    parser.add_argument("--work", type=Path, default=Path("/tmp/etbert-quality"))
    parser.add_argument("--pretrain-steps", type=int, default=1000)
    parser.add_argument("--seq-length", type=int, default=128, help="of pre-training and fine-tuning")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=None, help="fine-tuning learning rate (both ways; default: "
                        "the model's, 5e-4 at this size)")
    parser.add_argument("--payload-only", action=argparse.BooleanOptionalAction, default=True,
                        help="tokens from transport payloads, both stages (headers under strict anonymisation are "
                        "mostly pseudonyms)")
    parser.add_argument("--mlm-weight", type=float, default=1.0, help="of the pre-training loss (official: 0.1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    dataset = args.work / "dataset"
    if not dataset.exists():
        prepare(args.corpus, dataset, PrepareConfig())
    splits = {split: read_flows(dataset, split=split) for split in ("train", "val", "test")}
    print(f"dataset: {', '.join(f'{s} {t.num_rows}' for s, t in splits.items())} flows, "
          f"{len(set(splits['train'].column('label').to_pylist()))} classes")

    pretrained = args.work / "pretrained"
    started = time.monotonic()
    config = PretrainConfig(size="small", max_steps=args.pretrain_steps, seq_length=args.seq_length,
                            payload_only=args.payload_only, mlm_weight=args.mlm_weight)
    summary = pretrain([dataset], pretrained, config, device=args.device, resume=True)
    print(f"pre-training: {summary['steps']} steps over {summary['bursts']} bursts, "
          f"{(time.monotonic() - started) / 60:.1f} min in this session; the log's last interval:")
    print("  " + [line for line in (pretrained / "pretrain.log").read_text().splitlines() if " step " in line][-1])

    truth = splits["test"].column("label").to_pylist()
    results: dict[str, list[float]] = {"pre-trained": [], "from scratch": []}
    for seed in args.seeds:
        for name, source in (("pre-trained", str(pretrained)), ("from scratch", "")):
            model = create_model("etbert-flow", {"pretrained": source, "size": "small", "epochs": args.epochs,
                                                 "lr": args.lr, "seq_length": args.seq_length,
                                                 "payload_only": args.payload_only, "device": args.device})
            started = time.monotonic()
            model.fit(splits["train"], splits["val"], seed=seed)
            score = f1_score(truth, model.predict(splits["test"]), average="macro")
            results[name].append(score)
            print(f"seed {seed} {name:>12}: test macro F1 {score:.4f} ({(time.monotonic() - started) / 60:.1f} min)")
    means = {name: statistics.mean(scores) for name, scores in results.items()}
    print(" | ".join(f"{name}: macro F1 {mean:.4f}" for name, mean in means.items()))
    print(f"pre-training {'beats' if means['pre-trained'] > means['from scratch'] else 'does NOT beat'} "
          f"training from scratch by {means['pre-trained'] - means['from scratch']:+.4f}")
    (args.work / "quality.json").write_text(json.dumps({"settings": vars(args) | {"corpus": str(args.corpus),
                                                                                  "work": str(args.work)},
                                                        "pretrain": summary, "macro_f1": results}, indent=2))


if __name__ == "__main__":
    main()
