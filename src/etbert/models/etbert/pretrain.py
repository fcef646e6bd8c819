"""Pre-training: Masked BURST Model + Same-origin BURST Prediction, with checkpoints and exact resume.

    OUTPUT/                  the pre-trained model once done (see pretrained.py)
    OUTPUT/checkpoints/step-NNNNNNNN/   the latest checkpoint: model.safetensors, training.pt, state.json
    OUTPUT/pretrain.log      one line per logging interval (appended to on resume)

Every document is one BURST: [CLS] A [SEP] B [SEP] (segment ids 0 and 1), B being A's own second half or,
half the time, another burst's (bursts.py). Masking is dynamic: each step masks 15% of the tokens of
A and B afresh (80% [MASK], 10% a random token, 10% unchanged). The loss is
``mlm_weight * MLM + sbp_weight * SBP``, by default the official MLM/10 + SBP.

The step number alone fixes the data (the epoch's order and pairs come from (seed, epoch), the masks from
(seed, step)); a checkpoint adds model, optimiser, scheduler and RNG state, so a resumed run continues
exactly where the checkpoint left off and a killed run loses at most one checkpoint interval.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from transformers import BertForPreTraining

from etbert.models.etbert.bursts import EpochPairs, corpus_halves, epoch_pairs
from etbert.models.etbert.corpus import read_corpus
from etbert.models.etbert.pretrained import OPTIONS_FILE, SIZES, bert_config, save_pretrained_model
from etbert.models.etbert.tokens import BigramEncoder, TokenOptions
from etbert.models.devices import amp_dtype, autocast, check_settings, grad_scaler, resolve_device
from etbert.models.etbert.training import adamw, warmup_linear
from etbert.models.etbert.vocab import bigram_vocab, make_tokenizer, read_vocab

CHECKPOINTS = "checkpoints"
LOG_FILE = "pretrain.log"
IGNORE = -100  # label of positions without an MLM target


@dataclass(frozen=True)
class PretrainConfig:
    size: str = "small"  # tiny, small or base (pretrained.SIZES)
    vocab: str = ""  # a vocab.txt; empty: the full bigram vocabulary
    seq_length: int = 128
    batch_size: int = 32
    lr: float = 5e-4
    max_steps: int = 1000
    warmup: float = 0.1  # fraction of the steps
    weight_decay: float = 0.01
    mask_fraction: float = 0.15
    mlm_weight: float = 0.1
    sbp_weight: float = 1.0
    checkpoint_every: int = 100
    log_every: int = 10
    seed: int = 0
    payload_only: bool = False
    max_packet_bytes: int = 128
    include_val: bool = False  # also pre-train on a dataset's validation split
    precision: str = "auto"  # auto: bf16 autocast where the GPU or CPU does bf16 natively; fp32; bf16

    def __post_init__(self):
        check_settings("auto", self.precision)  # the device is pretrain()'s argument
        if self.size not in SIZES:
            raise ValueError(f"unknown model size {self.size!r}; choose one of {', '.join(SIZES)}")
        if not 8 <= self.seq_length <= 512:
            raise ValueError(f"seq_length must be between 8 and 512, not {self.seq_length}")
        for name in ("batch_size", "max_steps", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 < self.mask_fraction < 1:
            raise ValueError("mask_fraction must be between 0 and 1")
        TokenOptions(self.payload_only, self.max_packet_bytes)  # validates them


class PretrainError(Exception):
    """Pre-training cannot start or resume as asked (one clear line)."""


# StepCallback(step, max_steps, metrics of that step: loss, mlm_accuracy, sbp_accuracy, lr, tokens)
StepCallback = Callable[[int, int, dict], None]


def pretrain(corpus: list[Path], output: Path, config: PretrainConfig, *, device: str = "auto",
             resume: bool = False, on_step: StepCallback | None = None) -> dict:
    """Pre-train (or resume) into ``output``; returns a summary. With ``resume`` the saved settings apply."""
    output = Path(output)
    checkpoint = latest_checkpoint(output)
    if checkpoint and not resume:
        raise PretrainError(f"{output} holds a pre-training run; pass resume to continue it or pick another folder")
    if not checkpoint and (output / OPTIONS_FILE).exists():
        raise PretrainError(f"{output} already holds a model; pick another folder")
    if checkpoint:
        state = json.loads((checkpoint / "state.json").read_text())
        config = PretrainConfig(**state["config"])
    options = TokenOptions(config.payload_only, config.max_packet_bytes)
    tokenizer = make_tokenizer(read_vocab(Path(config.vocab)) if config.vocab else bigram_vocab())
    halves = corpus_halves(read_corpus(corpus, config.include_val), BigramEncoder(tokenizer), options)
    if len(halves) < 2:
        raise PretrainError("the corpus has fewer than two bursts with tokens; nothing to pre-train on")
    fingerprint = _fingerprint(halves)
    if checkpoint and state["corpus"] != fingerprint:
        raise PretrainError(f"the corpus differs from the one {output} was pre-trained on; resume needs the same")
    if checkpoint and state["step"] >= config.max_steps and (output / OPTIONS_FILE).exists():
        return {"steps": state["step"], "bursts": len(halves)}  # finished before: nothing to do

    target = resolve_device(device)
    torch.manual_seed(config.seed)
    model = BertForPreTraining(bert_config(config.size, tokenizer)).to(target)
    optimizer = adamw(model, config.lr, config.weight_decay)
    scheduler = warmup_linear(optimizer, config.max_steps, config.warmup)
    scaler = grad_scaler(target, config.precision)
    step = 0
    if checkpoint:
        step = _restore(checkpoint, model, optimizer, scheduler, scaler, target)
    batches = BurstBatches(halves, tokenizer, config)
    output.mkdir(parents=True, exist_ok=True)
    log = _Log(output / LOG_FILE)
    log.line(f"{'resume at step ' + str(step) if checkpoint else 'start'}: {len(halves)} bursts, "
             f"{batches.per_epoch} batches an epoch, device {target}, autocast {amp_dtype(target, config.precision)}, "
             f"config {json.dumps(dataclasses.asdict(config))}")

    model.train()
    while step < config.max_steps:
        input_ids, token_types, attention, same_origin = batches.batch(step)
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + step)
        input_ids, mlm_labels = mask_tokens(input_ids, batches.special, batches.ordinary, config.mask_fraction,
                                            tokenizer.mask_token_id, generator)
        with autocast(target, config.precision):
            losses = pretraining_losses(model, input_ids.to(target), token_types.to(target), attention.to(target),
                                        mlm_labels.to(target), same_origin.to(target))
        loss = config.mlm_weight * losses["mlm_loss"] + config.sbp_weight * losses["sbp_loss"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        step += 1
        metrics = {"loss": float(loss.detach()), **{name: float(value.detach()) for name, value in losses.items()},
                   "lr": lr, "tokens": int(attention.sum())}
        log.add(step, config.max_steps, metrics, force=step % config.log_every == 0 or step == config.max_steps)
        if step % config.checkpoint_every == 0 or step == config.max_steps:
            _save_checkpoint(output, step, config, fingerprint, batches.per_epoch, model, optimizer, scheduler, scaler)
        if on_step:
            on_step(step, config.max_steps, metrics)

    save_pretrained_model(model, tokenizer, options, output)
    log.line(f"done: model written to {output}")
    return {"steps": step, "bursts": len(halves), **log.summary()}


# ----- one step ----------------------------------------------------------------------------------------


def mask_tokens(input_ids: torch.Tensor, special: torch.Tensor, ordinary: torch.Tensor, fraction: float,
                mask_id: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic masking: (masked ids, MLM labels with ``IGNORE`` where nothing is predicted).

    Each sequence gets round(fraction x its ordinary tokens) targets, at least one; a target becomes [MASK]
    80% of the time, a random ordinary token 10%, and stays itself 10%.
    """
    candidate = ~special[input_ids]
    score = torch.rand(input_ids.shape, generator=generator).masked_fill(~candidate, 2.0)
    rank = score.argsort(dim=1).argsort(dim=1)
    count = (candidate.sum(dim=1, keepdim=True) * fraction).round().clamp(min=1)
    target = (rank < count) & candidate
    labels = input_ids.masked_fill(~target, IGNORE)
    action = torch.rand(input_ids.shape, generator=generator)
    random_tokens = ordinary[torch.randint(len(ordinary), input_ids.shape, generator=generator)]
    masked = torch.where(target & (action < 0.8), mask_id, input_ids)
    masked = torch.where(target & (action >= 0.8) & (action < 0.9), random_tokens, masked)
    return masked, labels


def pretraining_losses(model: BertForPreTraining, input_ids, token_types, attention, mlm_labels, same_origin) -> dict:
    """MLM and SBP losses and accuracies; the vocabulary projection runs on the masked positions only."""
    encoded = model.bert(input_ids=input_ids, attention_mask=attention, token_type_ids=token_types)
    targets = mlm_labels != IGNORE
    mlm_logits = model.cls.predictions(encoded.last_hidden_state[targets]).float()
    sbp_logits = model.cls.seq_relationship(encoded.pooler_output).float()
    labels = mlm_labels[targets]
    return {
        "mlm_loss": torch.nn.functional.cross_entropy(mlm_logits, labels),
        "sbp_loss": torch.nn.functional.cross_entropy(sbp_logits, same_origin),
        "mlm_accuracy": (mlm_logits.argmax(-1) == labels).float().mean(),
        "sbp_accuracy": (sbp_logits.argmax(-1) == same_origin).float().mean(),
    }


class BurstBatches:
    """Batch ``step`` of the run: a function of the step alone (epoch = step // batches an epoch)."""

    def __init__(self, halves, tokenizer, config: PretrainConfig):
        self.halves = halves
        self.config = config
        self.per_epoch = math.ceil(len(halves) / config.batch_size)
        self.cls, self.sep, self.pad = tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id
        special = torch.zeros(len(tokenizer), dtype=torch.bool)
        special[tokenizer.all_special_ids] = True
        self.special = special
        self.ordinary = torch.nonzero(~special).flatten()
        self._epoch: tuple[int, EpochPairs] | None = None

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input ids, segment ids, attention mask, SBP labels: 1 where B comes from another burst)."""
        epoch, index = divmod(step, self.per_epoch)
        if self._epoch is None or self._epoch[0] != epoch:
            self._epoch = (epoch, epoch_pairs(len(self.halves), self.config.seed, epoch))
        pairs = self._epoch[1]
        documents = range(index * self.config.batch_size, min((index + 1) * self.config.batch_size, len(self.halves)))
        rows = [self.document(self.halves[pairs.first[k]][0], self.halves[pairs.second[k]][1]) for k in documents]
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        token_types = torch.zeros((len(rows), width), dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (ids, types) in enumerate(rows):
            input_ids[i, :len(ids)] = torch.from_numpy(ids)
            token_types[i, :len(ids)] = torch.from_numpy(types)
            attention[i, :len(ids)] = 1
        same_origin = torch.from_numpy(pairs.other[list(documents)].astype(np.int64))
        return input_ids, token_types, attention, same_origin

    def document(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[CLS] A [SEP] B [SEP] and its segment ids, the longer segment cut at its end to fit."""
        room = self.config.seq_length - 3
        keep_a = min(len(a), max(room - len(b), room // 2))
        a, b = a[:keep_a], b[:room - keep_a]
        ids = np.concatenate([[self.cls], a, [self.sep], b, [self.sep]]).astype(np.int64)
        types = np.concatenate([np.zeros(len(a) + 2, np.int64), np.ones(len(b) + 1, np.int64)])
        return ids, types


# ----- checkpoints -------------------------------------------------------------------------------------


def latest_checkpoint(output: Path) -> Path | None:
    """The newest complete checkpoint (a checkpoint folder appears by rename only once fully written)."""
    folder = Path(output) / CHECKPOINTS
    steps = sorted(folder.glob("step-*")) if folder.is_dir() else []
    return steps[-1] if steps else None


def _save_checkpoint(output, step, config, fingerprint, per_epoch, model, optimizer, scheduler, scaler) -> None:
    folder = output / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".partial-{step:08d}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    save_model(model, str(partial / "model.safetensors"))
    training = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "cpu_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        training["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(training, partial / "training.pt")
    epoch, position = divmod(step, per_epoch)
    state = {"step": step, "epoch": epoch, "position": position, "config": dataclasses.asdict(config),
             "corpus": fingerprint}
    (partial / "state.json").write_text(json.dumps(state, indent=2))
    final = folder / f"step-{step:08d}"
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    for old in folder.iterdir():  # older checkpoints and partial ones left by a kill
        if old != final:
            shutil.rmtree(old, ignore_errors=True)


def _restore(checkpoint: Path, model, optimizer, scheduler, scaler, device: torch.device) -> int:
    load_model(model, str(checkpoint / "model.safetensors"), device=str(device))
    training = torch.load(checkpoint / "training.pt", weights_only=True, map_location="cpu")
    optimizer.load_state_dict(training["optimizer"])
    scheduler.load_state_dict(training["scheduler"])
    scaler.load_state_dict(training["scaler"])
    torch.set_rng_state(training["cpu_rng"])
    if "cuda_rng" in training and device.type == "cuda":
        torch.cuda.set_rng_state_all(training["cuda_rng"])
    return json.loads((checkpoint / "state.json").read_text())["step"]


def _fingerprint(halves) -> str:
    """Identifies the corpus's token content, so a resume on other data is refused."""
    digest = hashlib.blake2b(digest_size=16)
    for a, b in halves:
        digest.update(a.tobytes())
        digest.update(b"|")
        digest.update(b.tobytes())
        digest.update(b"#")
    return digest.hexdigest()


# ----- log ---------------------------------------------------------------------------------------------


class _Log:
    """Running means over the logging interval, written as one line each to the log file."""

    def __init__(self, path: Path):
        self.path = path
        self.sums: dict[str, float] = {}
        self.count = 0
        self.started = time.monotonic()
        self.total_tokens = 0
        self.last: dict[str, float] = {}

    def line(self, text: str) -> None:
        with self.path.open("a") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")

    def add(self, step: int, total: int, metrics: dict, force: bool) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + value
        self.count += 1
        self.total_tokens += metrics["tokens"]
        if not force:
            return
        self.last = {key: value / self.count for key, value in self.sums.items() if key not in ("tokens", "lr")}
        self.last["tokens_per_second"] = self.total_tokens / max(time.monotonic() - self.started, 1e-9)
        self.line(f"step {step}/{total} loss {self.last['loss']:.4f} mlm_loss {self.last['mlm_loss']:.4f} "
                  f"sbp_loss {self.last['sbp_loss']:.4f} mlm_acc {self.last['mlm_accuracy']:.4f} "
                  f"sbp_acc {self.last['sbp_accuracy']:.4f} lr {metrics['lr']:.3g} "
                  f"tokens/s {self.last['tokens_per_second']:.0f}")
        self.sums, self.count = {}, 0

    def summary(self) -> dict:
        return dict(self.last)
