"""The handshake CNN: early identification of proxy traffic from a session's first 1024 bytes.

After the paper on identifying encrypted proxy flows (Shadowsocks, V2Ray) from their connection set-up:
the session's first 1024 bytes, both directions, whole packets, become a 32x32 grayscale image
(`etbert.features.session_image`) with the identity fields (IP addresses, IP identification, ports)
replaced by random bytes; a small VGG-like CNN classifies it. The model decides as soon as 1024 bytes of a
session have passed: it reads nothing else.

    conv 5x5x32, pool, conv 5x5x64, pool, conv 3x3x128, conv 3x3x256, conv 3x3x256, pool   (ReLU, stride 1)
    fc 1024, dropout 0.5, fc 1024, dropout 0.5, output                                      (Adam, lr 1e-4)

The paper lists the layers but not where the three 2x2 pools sit; they follow each of the first two
convolutions and the last one, as in AlexNet/VGG, so 32x32 becomes 4x4x256 before the dense layers.
Convolutions pad to keep their input size.

Identity fields are drawn anew every epoch (and for every prediction, from a fixed seed, so predictions
repeat): the network cannot learn a host from them. Datasets prepared with the `strict` or `seed-004`
policy have them random already, and replacing random bytes by others changes nothing; on a `none`
dataset this is the paper's randomisation itself (`randomize_identity`).

"Approximately complete" background class: the background class of a closed training set never covers
all the traffic a deployed classifier meets. The paper adds randomly generated images labelled as
background, ``random_ratio`` of them per real background flow (1/9 worked best in its experiment 1), so
that whatever resembles no target class falls to background. Here they are uniformly random bytes, drawn
anew every epoch. A training set without the background class gets none.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch  # at import, so that fit's seed_everything seeds it (see etbert.models.base)
from safetensors.torch import load_file, save_file
from torch import nn

from etbert.features.session_image import COLUMNS, IMAGE_SIDE, session_images
from etbert.models.base import FlowModel, ModelError
from etbert.models.devices import autocast, check_settings, grad_scaler, resolve_device

WEIGHTS_FILE = "weights.safetensors"
TRAINING_FILE = "training.json"
PREDICT_BATCH = 512
PREDICT_SEED = 0x5EED0004  # identity replacements at prediction: fixed, so the same flows score the same


@dataclass
class HandshakeCNNConfig:
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-4
    dropout: float = 0.5
    background_class: str = "background"
    random_ratio: float = 1 / 9  # random images per real background flow; 0: none
    randomize_identity: bool = True  # replace IP addresses, IP ID and ports by random bytes (seed-004)
    device: str = "auto"  # auto (cuda when available), cpu, cuda
    precision: str = "auto"  # auto: bf16 autocast where the GPU or CPU does bf16 natively; fp32; bf16

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be at least 1, not {self.epochs} and {self.batch_size}")
        if self.learning_rate <= 0 or not 0 <= self.dropout < 1:
            raise ValueError("learning_rate must be positive and dropout in [0, 1)")
        if self.random_ratio < 0:
            raise ValueError(f"random_ratio must be 0 or more, not {self.random_ratio}")
        check_settings(self.device, self.precision)


def random_sample_count(background_flows: int, ratio: float) -> int:
    """How many random images go with ``background_flows`` real ones: ratio R of random to real."""
    return int(round(background_flows * ratio))


def with_random_background(images: np.ndarray, y: np.ndarray, background: int | None, ratio: float,
                           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``images`` and labels ``y`` plus uniformly random images labelled ``background`` (a class index),
    ``random_sample_count`` of them; unchanged when there is no background class or the ratio is 0."""
    if background is None:
        return images, y
    count = random_sample_count(int(np.sum(y == background)), ratio)
    noise = rng.integers(0, 256, size=(count, *images.shape[1:]), dtype=np.uint8)
    return np.concatenate([images, noise]), np.concatenate([y, np.full(count, background, dtype=y.dtype)])


def build_network(classes: int, dropout: float) -> nn.Sequential:
    """The paper's CNN (see the module docstring) for 1x32x32 inputs scaled to [0, 1]."""

    def conv(inputs: int, outputs: int, size: int) -> list:
        return [nn.Conv2d(inputs, outputs, size, stride=1, padding=size // 2), nn.ReLU()]

    side = IMAGE_SIDE // 2**3  # after three 2x2 pools
    return nn.Sequential(
        *conv(1, 32, 5), nn.MaxPool2d(2, 2),
        *conv(32, 64, 5), nn.MaxPool2d(2, 2),
        *conv(64, 128, 3), *conv(128, 256, 3), *conv(256, 256, 3), nn.MaxPool2d(2, 2),
        nn.Flatten(),
        nn.Linear(256 * side * side, 1024), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(1024, 1024), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(1024, classes),
    )


class HandshakeCNN(FlowModel):
    name = "handshake-cnn"
    Config = HandshakeCNNConfig
    columns = COLUMNS

    def images(self, flows: pa.Table, rng: np.random.Generator) -> np.ndarray:
        """The model's input: session images, identity fields randomised from ``rng`` when configured."""
        if not self.config.randomize_identity:
            return session_images(flows)
        return session_images(flows, rng.integers(0, 2**63, size=flows.num_rows, dtype=np.uint64))

    def _fit(self, train, y, val, y_val, on_progress) -> None:
        device = self._device()
        rng = np.random.default_rng(np.random.randint(2**32))  # seeded by fit's seed_everything
        background = (self.classes_.index(self.config.background_class)
                      if self.config.background_class in self.classes_ and self.config.random_ratio > 0 else None)
        network = build_network(len(self.classes_), self.config.dropout).to(device)
        optimizer = torch.optim.Adam(network.parameters(), lr=self.config.learning_rate)
        scaler = grad_scaler(device, self.config.precision)
        loss_function = torch.nn.CrossEntropyLoss()
        best_loss, best_state, best_epoch, history = float("inf"), None, self.config.epochs, []
        for epoch in range(self.config.epochs):
            images, labels = with_random_background(self.images(train, rng), y, background,
                                                    self.config.random_ratio, rng)
            order = rng.permutation(len(labels))
            network.train()
            total = 0.0
            stage = f"epoch {epoch + 1}/{self.config.epochs}"
            for start in range(0, len(order), self.config.batch_size):
                batch = order[start:start + self.config.batch_size]
                optimizer.zero_grad()
                with autocast(device, self.config.precision):
                    logits = network(image_batch(images[batch], device))
                loss = loss_function(logits.float(), torch.as_tensor(labels[batch], device=device))
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                total += loss.item() * len(batch)
                on_progress(stage, min(start + len(batch), len(order)), len(order))
            record = {"epoch": epoch + 1, "train_loss": total / len(order), "random_images": len(labels) - len(y)}
            if val is not None:
                self.network_ = network
                probabilities = self._predict_proba(val)
                truth = probabilities[np.arange(len(y_val)), y_val]
                record["val_loss"] = float(-np.mean(np.log(np.clip(truth, 1e-12, None))))
                record["val_accuracy"] = float(np.mean(probabilities.argmax(axis=1) == y_val))
                if record["val_loss"] < best_loss:  # keep the epoch that generalised best
                    best_loss, best_epoch = record["val_loss"], epoch + 1
                    best_state = copy.deepcopy(network.state_dict())
            history.append(record)
        if best_state is not None:
            network.load_state_dict(best_state)
        self.network_ = network.eval()
        self.training_ = {"best_epoch": best_epoch, "history": history}

    def _predict_proba(self, flows: pa.Table) -> np.ndarray:
        images = self.images(flows, np.random.default_rng(PREDICT_SEED))
        device = next(self.network_.parameters()).device
        self.network_.eval()
        out = []
        with torch.inference_mode(), autocast(device, self.config.precision):
            for start in range(0, len(images), PREDICT_BATCH):
                logits = self.network_(image_batch(images[start:start + PREDICT_BATCH], device))
                out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(out)

    def _save_state(self, directory: Path) -> None:
        save_file({key: value.detach().cpu().contiguous() for key, value in self.network_.state_dict().items()},
                  str(directory / WEIGHTS_FILE))
        (directory / TRAINING_FILE).write_text(json.dumps(self.training_, indent=2))

    def _load_state(self, directory: Path) -> None:
        path = directory / WEIGHTS_FILE
        if not path.exists():
            raise ModelError(f"{directory} holds no {WEIGHTS_FILE}")
        network = build_network(len(self.classes_), self.config.dropout)
        try:
            network.load_state_dict(load_file(str(path)))
        except RuntimeError as error:
            raise ModelError(f"{path} does not fit the handshake CNN of {len(self.classes_)} classes: "
                             f"{str(error).splitlines()[0]}") from error
        self.network_ = network.to(self._device()).eval()
        training = directory / TRAINING_FILE
        self.training_ = json.loads(training.read_text()) if training.exists() else {}

    def _device(self) -> torch.device:
        try:
            return resolve_device(self.config.device)
        except ValueError as error:
            raise ModelError(f"{error}; use device=cpu or auto") from error


def image_batch(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (n, 32, 32) -> float (n, 1, 32, 32) in [0, 1] on ``device``."""
    return torch.as_tensor(images, device=device).unsqueeze(1).float().div_(255.0)
