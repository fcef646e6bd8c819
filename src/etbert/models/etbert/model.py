"""The fine-tuned ET-BERT classifiers of the harness: ``etbert-packet`` and ``etbert-flow``.

Both are a ``transformers.BertForSequenceClassification`` (the [CLS] vector through BERT's pooler and a
linear layer), started from a pre-trained model folder (``pretrained``) or from scratch (empty: the
paper's ablation), and saved in the pre-trained model format beside the harness's ``model.json``.

Inputs follow the official fine-tuning code: one segment, ``[CLS] tokens [SEP]``.
- etbert-flow: the bigram tokens of the flow's first ``packets`` packets one after the other. Each
  packet gets an equal share of the sequence, (seq_length - 2) // packets tokens, so the last packet is
  never cut away by the first ones (the official code gives each packet up to 128 tokens and truncates
  the whole).
- etbert-packet: one packet, truncated to seq_length - 2 tokens; trained on the deduplicated packets of
  the training flows (``etbert.dataset.samples``). A flow's probabilities are the mean over its first
  ``packets`` packets, and ``packet_predictions`` reports the packets themselves.

With a validation split the weights of the epoch with the best validation macro F1 are kept.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from sklearn.metrics import f1_score
from transformers import BertForSequenceClassification

from etbert.dataset.samples import packet_samples
from etbert.models.base import FlowModel, ModelError
from etbert.models.etbert.pretrained import (MAX_POSITIONS, SIZES, PretrainedError, bert_config, load_pretrained_model,
                                             save_pretrained_model)
from etbert.models.etbert.tokens import BigramEncoder, TokenOptions, packet_view
from etbert.models.devices import autocast, check_settings, grad_scaler, resolve_device
from etbert.models.etbert.training import adamw, warmup_linear
from etbert.models.etbert.vocab import bigram_vocab, make_tokenizer

PREDICT_BATCH = 64
LR_BASE = 2e-5  # the paper's fine-tuning rate for BERT-base (hidden 768)
LR_SMALLER = 5e-4  # small models (and any from scratch at that size) barely move at 1e-4 in ten epochs


@dataclasses.dataclass
class EtbertFlowConfig:
    pretrained: str = ""  # a pre-trained model folder; empty: from scratch
    freeze_encoder: bool = False  # train the classifier alone (a linear probe)
    epochs: int = 10
    batch_size: int = 32
    lr: float | None = None  # None: 2e-5 for BERT-base-sized models (the paper's), 5e-4 for smaller ones
    seq_length: int = 512
    packets: int = 5  # first packets of a flow: its input (flow) or the packets averaged (packet)
    payload_only: bool | None = None  # None: as the pre-trained model was (headers kept from scratch)
    size: str = "small"  # tiny, small or base; from scratch only
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast where the GPU or CPU does bf16 natively; fp32; bf16

    def __post_init__(self):
        check_settings(self.device, self.precision)
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {', '.join(SIZES)}")
        if not 3 <= self.seq_length <= MAX_POSITIONS:
            raise ValueError(f"seq_length must be between 3 and {MAX_POSITIONS}")
        if min(self.epochs, self.batch_size, self.packets) < 1:
            raise ValueError("epochs, batch_size and packets must be at least 1")


@dataclasses.dataclass
class EtbertPacketConfig(EtbertFlowConfig):
    seq_length: int = 128


class _EtbertClassifier(FlowModel):
    """What both classifiers share; subclasses say which sequences a flow table gives."""

    columns = ("label", "split", "flow_id", "pkt_direction", "pkt_length", "pkt_bytes", "pkt_l4_offset",
               "pkt_payload_offset")

    def _sequence(self, packets: list[bytes], payload_offsets: list[int], tokens_per_packet: int) -> np.ndarray:
        views = [packet_view(data, offset, self.options.payload_only) for data, offset in zip(packets, payload_offsets)]
        return self.encoder.sequence(views, tokens_per_packet)

    # ----- the FlowModel hooks --------------------------------------------------------------------------

    def _fit(self, train, y, val, y_val, on_progress) -> None:
        self._build()
        sequences, targets = self._training_sequences(train, y)
        validation = self._training_sequences(val, y_val) if val is not None else None
        self._train(sequences, targets, validation, on_progress)

    def _save_state(self, directory: Path) -> None:
        save_pretrained_model(self.network, self.tokenizer, self.options, directory)

    def _load_state(self, directory: Path) -> None:
        try:
            self.network, self.tokenizer, self.options = load_pretrained_model(directory, BertForSequenceClassification)
        except PretrainedError as error:
            raise ModelError(str(error)) from error
        self.encoder = BigramEncoder(self.tokenizer)
        self.device = resolve_device(self.config.device)
        self.network.to(self.device)

    # ----- building and training ------------------------------------------------------------------------

    def _build(self) -> None:
        config = self.config
        labels = {"num_labels": len(self.classes_), "id2label": dict(enumerate(self.classes_)),
                  "label2id": {name: i for i, name in enumerate(self.classes_)}}
        if config.pretrained:
            try:
                self.network, self.tokenizer, options = load_pretrained_model(
                    Path(config.pretrained), BertForSequenceClassification, **labels)
            except PretrainedError as error:
                raise ModelError(str(error)) from error
        else:
            self.tokenizer = make_tokenizer(bigram_vocab())
            options = TokenOptions()
            self.network = BertForSequenceClassification(bert_config(config.size, self.tokenizer, **labels))
        if self.network.config.max_position_embeddings < config.seq_length:
            raise ModelError(f"seq_length {config.seq_length} exceeds the model's "
                             f"{self.network.config.max_position_embeddings} positions")
        payload_only = options.payload_only if config.payload_only is None else config.payload_only
        self.options = dataclasses.replace(options, payload_only=payload_only)
        self.encoder = BigramEncoder(self.tokenizer)
        if config.freeze_encoder:
            for parameter in self.network.bert.parameters():
                parameter.requires_grad = False
        self.device = resolve_device(config.device)
        self.network.to(self.device)

    def _train(self, sequences: list[np.ndarray], y: np.ndarray, validation, on_progress) -> None:
        config = self.config
        batches = -(-len(sequences) // config.batch_size)
        lr = config.lr if config.lr is not None else LR_BASE if self.network.config.hidden_size >= 768 else LR_SMALLER
        optimizer = adamw(self.network, lr)
        scheduler = warmup_linear(optimizer, config.epochs * batches, 0.1)
        scaler = grad_scaler(self.device, config.precision)
        best_score, best_state = -1.0, None
        for epoch in range(config.epochs):
            self.network.train()
            order = torch.randperm(len(sequences)).numpy()  # from the seed fit() set
            for b in range(batches):
                rows = order[b * config.batch_size:(b + 1) * config.batch_size]
                input_ids, attention = _padded([sequences[i] for i in rows], self.tokenizer.pad_token_id)
                with autocast(self.device, self.config.precision):
                    logits = self.network(input_ids=input_ids.to(self.device),
                                          attention_mask=attention.to(self.device)).logits
                loss = torch.nn.functional.cross_entropy(logits.float(), torch.from_numpy(y[rows]).to(self.device))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(self.network.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                on_progress(f"epoch {epoch + 1}/{config.epochs}", b + 1, batches)
            if validation is not None:
                predicted = self._probabilities(validation[0]).argmax(axis=1)
                score = f1_score(validation[1], predicted, average="macro", labels=range(len(self.classes_)),
                                 zero_division=0)
                if score > best_score:
                    best_score, best_state = score, copy.deepcopy(self.network.state_dict())
        if best_state is not None:
            self.network.load_state_dict(best_state)
        self.network.eval()

    def _probabilities(self, sequences: list[np.ndarray]) -> np.ndarray:
        """Class probabilities of each sequence (batched by length, so little padding is computed)."""
        self.network.eval()
        out = np.zeros((len(sequences), len(self.classes_)))
        order = np.argsort([len(s) for s in sequences], kind="stable")
        with torch.no_grad():
            for start in range(0, len(order), PREDICT_BATCH):
                rows = order[start:start + PREDICT_BATCH]
                input_ids, attention = _padded([sequences[i] for i in rows], self.tokenizer.pad_token_id)
                with autocast(self.device, self.config.precision):
                    logits = self.network(input_ids=input_ids.to(self.device),
                                          attention_mask=attention.to(self.device)).logits
                out[rows] = torch.softmax(logits.float(), dim=-1).cpu().numpy()
        return out


class EtbertFlow(_EtbertClassifier):
    """Flow-level ET-BERT: the first ``packets`` packets of a flow as one sequence."""

    name = "etbert-flow"
    Config = EtbertFlowConfig

    def flow_sequences(self, flows: pa.Table) -> list[np.ndarray]:
        per_packet = (self.config.seq_length - 2) // self.config.packets
        return [self._sequence(packets[:self.config.packets], offsets[:self.config.packets], per_packet)
                for packets, offsets in zip(flows.column("pkt_bytes").to_pylist(),
                                            flows.column("pkt_payload_offset").to_pylist())]

    def _training_sequences(self, flows, y):
        return self.flow_sequences(flows), y

    def _predict_proba(self, flows: pa.Table) -> np.ndarray:
        return self._probabilities(self.flow_sequences(flows))


class EtbertPacket(_EtbertClassifier):
    """Packet-level ET-BERT: one packet a sequence; a flow is the mean over its first ``packets`` packets."""

    name = "etbert-packet"
    Config = EtbertPacketConfig

    def packet_sequences(self, packets: pa.Table) -> list[np.ndarray]:
        return [self._sequence([data], [offset], self.config.seq_length - 2)
                for data, offset in zip(packets.column("bytes").to_pylist(),
                                        packets.column("payload_offset").to_pylist())]

    def _samples(self, flows: pa.Table) -> tuple[list[np.ndarray], np.ndarray]:
        """Sequences of the flows' deduplicated first packets and their flows' class indices (-1: unknown)."""
        packets, _ = packet_samples(flows, self.config.packets)
        index = {name: i for i, name in enumerate(self.classes_)}
        y = np.array([index.get(label, -1) for label in packets.column("label").to_pylist()], dtype=np.int64)
        return self.packet_sequences(packets), y

    def _training_sequences(self, flows, y):
        return self._samples(flows)

    def _predict_proba(self, flows: pa.Table) -> np.ndarray:
        counts, sequences = [], []
        for packets, offsets in zip(flows.column("pkt_bytes").to_pylist(),
                                    flows.column("pkt_payload_offset").to_pylist()):
            take = list(zip(packets, offsets))[:self.config.packets]
            counts.append(len(take))
            sequences += [self._sequence([data], [offset], self.config.seq_length - 2) for data, offset in take]
        probabilities = self._probabilities(sequences)
        owner = np.repeat(np.arange(len(counts)), counts)
        sums = np.zeros((len(counts), len(self.classes_)))
        np.add.at(sums, owner, probabilities)
        return sums / np.array(counts)[:, None]

    def packet_predictions(self, flows: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        sequences, y = self._samples(flows)
        known = y >= 0
        return y[known], self._probabilities([s for s, k in zip(sequences, known) if k])


def _padded(sequences: list[np.ndarray], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, sequence in enumerate(sequences):
        input_ids[i, :len(sequence)] = torch.from_numpy(sequence)
        attention[i, :len(sequence)] = 1
    return input_ids, attention
