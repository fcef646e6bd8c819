"""LSTM + self-attention over contextual byte embeddings (the time-series model of encrypted app traffic).

Input: the first N packets of a flow, the first M bytes of each, in time order (``byte_matrix``), read as
one sequence of N*M byte tokens. Each token gets a context-dependent vector from an ELMo-style byte
language model: a byte embedding followed by two-layer forward and backward LSTMs, pre-trained to predict
the next (forward) and previous (backward) byte on the training flows' bytes; the vector is a learned
softmax-weighted mix (times a scale gamma) of the embedding and the two LSTM layers, so the same byte
value reads differently in different protocol positions. The classifier: LSTM (256, ReLU), batch norm,
self-attention (256), batch norm, mean over the sequence, dense 64 with ReLU, softmax over the classes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from safetensors.torch import load_file, save_file
from sklearn.metrics import f1_score
from torch import nn
from torch.nn import functional as F

from etbert.features.byte_matrix import PAD, VOCABULARY, byte_matrix
from etbert.models.base import FlowModel, ModelError, ProgressCallback
from etbert.models.devices import check_settings, resolve_device

WEIGHTS_FILE = "model.safetensors"
LM_LAYERS = 2


@dataclass
class LSTMAttentionConfig:
    packets: int = 6  # N
    bytes_per_packet: int = 128  # M (the paper's embedding stage also mentions 108)
    payload_only: bool = False  # bytes from the transport payload on instead of the IP header
    lm_dim: int = 128  # byte embedding and each LM direction's state; contextual vectors are twice this
    lm_epochs: int = 3
    freeze_embeddings: bool = True  # as ELMo: the LM stays fixed, only its layer mix is learned
    lstm_units: int = 256
    attention_units: int = 256
    dense_units: int = 64
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 5  # epochs without a better validation macro F1 before stopping
    device: str = "auto"  # auto, cpu or cuda

    def __post_init__(self):
        sizes = ("packets", "bytes_per_packet", "lm_dim", "lstm_units", "attention_units", "dense_units",
                 "batch_size", "patience")
        small = [name for name in sizes if getattr(self, name) < 1]
        if small:
            raise ValueError(f"{', '.join(small)} must be at least 1")
        check_settings(self.device)


class ByteLanguageModel(nn.Module):
    """Byte embedding and separate forward and backward LSTM stacks (so no direction sees what it predicts)."""

    def __init__(self, dim: int):
        super().__init__()
        self.embedding = nn.Embedding(VOCABULARY, dim)
        self.forward_layers = nn.ModuleList(nn.LSTM(dim, dim, batch_first=True) for _ in range(LM_LAYERS))
        self.backward_layers = nn.ModuleList(nn.LSTM(dim, dim, batch_first=True) for _ in range(LM_LAYERS))
        self.softmax = nn.Linear(dim, VOCABULARY)  # shared by both directions, as in ELMo

    def layers(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """[embedding, LSTM layer 1, layer 2], each (batch, time, 2 * dim): forward and backward states side by side."""
        embedded = self.embedding(tokens)
        states = [torch.cat([embedded, embedded], dim=-1)]
        forward, backward = embedded, embedded.flip(1)
        for forward_layer, backward_layer in zip(self.forward_layers, self.backward_layers):
            forward, backward = forward_layer(forward)[0], backward_layer(backward)[0]
            states.append(torch.cat([forward, backward.flip(1)], dim=-1))
        return states

    def loss(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean of the forward next-byte and backward previous-byte cross-entropies (padding is never a target)."""
        top = self.layers(tokens)[-1]
        dim = top.shape[-1] // 2
        forward = self.softmax(top[:, :-1, :dim])
        backward = self.softmax(top[:, 1:, dim:])
        return (F.cross_entropy(forward.transpose(1, 2), tokens[:, 1:], ignore_index=PAD)
                + F.cross_entropy(backward.transpose(1, 2), tokens[:, :-1], ignore_index=PAD)) / 2


class ContextualEmbedding(nn.Module):
    """ELMo's task-specific view of the LM: gamma * sum_j softmax(s)_j * layer_j."""

    def __init__(self, dim: int):
        super().__init__()
        self.language_model = ByteLanguageModel(dim)
        self.layer_weights = nn.Parameter(torch.zeros(LM_LAYERS + 1))
        self.gamma = nn.Parameter(torch.ones(()))
        self.frozen = False

    def freeze(self) -> None:
        self.frozen = True
        self.language_model.requires_grad_(False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            layers = torch.stack(self.language_model.layers(tokens))
        weights = torch.softmax(self.layer_weights, dim=0)
        return self.gamma * torch.einsum("l,lbtd->btd", weights, layers)


class SelfAttention(nn.Module):
    """Single-head scaled dot-product self-attention over the whole sequence."""

    def __init__(self, dim: int, units: int):
        super().__init__()
        self.query = nn.Linear(dim, units)
        self.key = nn.Linear(dim, units)
        self.value = nn.Linear(dim, units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(self.query(x), self.key(x), self.value(x))


class LSTMAttentionNetwork(nn.Module):
    def __init__(self, config: LSTMAttentionConfig, classes: int):
        super().__init__()
        self.embedding = ContextualEmbedding(config.lm_dim)
        self.lstm = nn.LSTM(2 * config.lm_dim, config.lstm_units, batch_first=True)
        self.lstm_norm = nn.BatchNorm1d(config.lstm_units)
        self.attention = SelfAttention(config.lstm_units, config.attention_units)
        self.attention_norm = nn.BatchNorm1d(config.attention_units)
        self.dense = nn.Linear(config.attention_units, config.dense_units)
        self.output = nn.Linear(config.dense_units, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Class logits for (batch, N*M) byte tokens."""
        x = F.relu(self.lstm(self.embedding(tokens))[0])
        x = self.lstm_norm(x.transpose(1, 2)).transpose(1, 2)  # BatchNorm1d normalises dim 1
        x = self.attention_norm(self.attention(x).transpose(1, 2))
        return self.output(F.relu(self.dense(x.mean(dim=2))))


def pretrain_language_model(model: ByteLanguageModel, tokens: torch.Tensor, epochs: int, batch_size: int,
                            learning_rate: float, on_progress: ProgressCallback) -> list[float]:
    """Train the byte LM on unlabelled token sequences; returns the mean loss of each epoch."""
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    losses = []
    for epoch in range(epochs):
        total, batches = 0.0, 0
        for done, batch in _batches(len(tokens), batch_size, shuffle=True):
            optimizer.zero_grad()
            loss = model.loss(tokens[batch].to(device))
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
            on_progress(f"language model epoch {epoch + 1}/{epochs}", done, len(tokens))
        losses.append(total / max(batches, 1))
    return losses


class LSTMAttention(FlowModel):
    name = "lstm-attention"
    Config = LSTMAttentionConfig
    columns = ("pkt_bytes", "pkt_payload_offset", "label")

    def tokens(self, flows: pa.Table) -> torch.Tensor:
        """The flows as one sequence of N*M byte tokens each: a (flows, N*M) int64 tensor."""
        config = self.config
        matrix = byte_matrix(flows, config.packets, config.bytes_per_packet, config.payload_only)
        return torch.from_numpy(matrix.reshape(len(matrix), -1).astype(np.int64))

    def _build(self) -> None:
        self.device_ = _device(self.config.device)
        self.network_ = LSTMAttentionNetwork(self.config, len(self.classes_)).to(self.device_)

    def _fit(self, train, y, val, y_val, on_progress) -> None:
        config = self.config
        self._build()
        tokens = self.tokens(train)
        embedding = self.network_.embedding
        pretrain_language_model(embedding.language_model, tokens, config.lm_epochs, config.batch_size,
                                config.learning_rate, on_progress)
        if config.freeze_embeddings:
            embedding.freeze()
        trainable = [p for p in self.network_.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(trainable, lr=config.learning_rate)
        labels = torch.from_numpy(y)
        val_tokens = self.tokens(val) if val is not None else None
        best, best_state, waited = None, None, 0
        for epoch in range(config.epochs):
            self.network_.train()
            for done, batch in _batches(len(tokens), config.batch_size, shuffle=True):
                optimizer.zero_grad()
                logits = self.network_(tokens[batch].to(self.device_))
                F.cross_entropy(logits, labels[batch].to(self.device_)).backward()
                optimizer.step()
                on_progress(f"epoch {epoch + 1}/{config.epochs}", done, len(tokens))
            if val_tokens is None:
                continue
            probabilities = self._probabilities(val_tokens)
            loss = float(-np.log(np.clip(probabilities[np.arange(len(y_val)), y_val], 1e-12, None)).mean())
            score = (f1_score(y_val, probabilities.argmax(axis=1), average="macro", zero_division=0), -loss)
            if best is None or score > best:
                best, best_state, waited = score, copy.deepcopy(self.network_.state_dict()), 0
            else:
                waited += 1
                if waited >= config.patience:
                    break
        if best_state is not None:
            self.network_.load_state_dict(best_state)

    def _probabilities(self, tokens: torch.Tensor) -> np.ndarray:
        self.network_.eval()
        with torch.no_grad():
            parts = [torch.softmax(self.network_(tokens[batch].to(self.device_)), dim=1).cpu()
                     for _, batch in _batches(len(tokens), max(self.config.batch_size, 256), shuffle=False)]
        return torch.cat(parts).double().numpy()

    def _predict_proba(self, flows: pa.Table) -> np.ndarray:
        return self._probabilities(self.tokens(flows))

    def _save_state(self, directory: Path) -> None:
        state = {key: value.detach().cpu().contiguous() for key, value in self.network_.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_FILE))

    def _load_state(self, directory: Path) -> None:
        self._build()
        path = directory / WEIGHTS_FILE
        if not path.exists():
            raise ModelError(f"{directory} has no {WEIGHTS_FILE}")
        self.network_.load_state_dict(load_file(str(path), device=str(self.device_)))


def _batches(count: int, size: int, shuffle: bool):
    """(items done after this batch, index tensor) over ``count`` items."""
    order = torch.randperm(count) if shuffle else torch.arange(count)
    for start in range(0, count, size):
        batch = order[start:start + size]
        yield start + len(batch), batch


def _device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except ValueError as error:
        raise ModelError(str(error)) from error
