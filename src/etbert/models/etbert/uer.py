"""The authors' checkpoints: an ET-BERT (UER-py) state dict becomes a Hugging Face `BertForPreTraining`.

The official ET-BERT model (`pretrained_model.bin` with `models/encryptd_vocab.txt`) was trained with the
UER-py toolkit, whose BERT has the same computation as Hugging Face's under other names, with three
differences the conversion absorbs:

* Segments. UER's segment embedding has three rows: 0 for padding, 1 for segment A, 2 for segment B.
  BERT's token types are 0 and 1, so rows 1 and 2 become token types 0 and 1. The padding row is dropped:
  UER masks padded keys out of attention, so it only ever reached the hidden states *of* padded positions,
  which nothing reads (classification reads [CLS], MLM masked tokens); HF masks them with attention_mask.
* LayerNorm. UER normalises with the unbiased standard deviation plus eps, ``g * (x - m) / (std + 1e-6) + b``;
  BERT's LayerNorm uses the biased variance, ``g * (x - m) / sqrt(var + eps) + b``. Since
  ``std = sqrt(N / (N - 1)) * sqrt(var)``, scaling every gamma by ``sqrt((N - 1) / N)`` is exact; what is left
  is ``sqrt(var) + 1e-6`` against ``sqrt(var + eps)``. With ``eps = 1e-12 = (1e-6)**2`` the two denominators
  agree to a relative ``1e-6 / sqrt(var)`` (1e-4 even for activations as flat as std 0.01, and never more than
  a factor sqrt(2) apart), well under float32 noise for real activations.
* Heads. The number of attention heads is not stored in a state dict; the default is hidden // 64 (every
  BERT size, ET-BERT base included: 768 / 64 = 12).

Attention masking (UER adds -10000 to padded keys' scores, HF a dtype minimum) gives the same float32
softmax. UER's GELU is the erf one, as HF's "gelu". The MLM decoder is tied to the word embedding only when
the checkpoint's two matrices are equal. The NSP head (nsp_linear_1, tanh, nsp_linear_2) is BERT's pooler
plus seq_relationship.

Checkpoints are read with ``torch.load(weights_only=True)``: tensors only, never arbitrary pickled objects.
"""

from __future__ import annotations

import math
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import BertConfig, BertForPreTraining

from etbert.models.etbert.pretrained import save_pretrained_model
from etbert.models.etbert.tokens import TokenOptions
from etbert.models.etbert.vocab import VocabError, make_tokenizer, read_vocab

# UER's LayerNorm eps and the HF eps that matches it best (see the module docstring)
UER_LAYER_NORM_EPS = 1e-6
HF_LAYER_NORM_EPS = UER_LAYER_NORM_EPS**2
_LAYER_PREFIX = "encoder.transformer."
_LAYER_PROBE = "self_attn.linear_layers.0.weight"  # the key whose presence says "layer i exists"


class UerError(Exception):
    """A file is not a convertible UER BERT checkpoint, or its vocab does not fit it (one clear line)."""


@dataclass(frozen=True)
class UerShape:
    """What a UER BERT state dict says about its architecture (heads excepted)."""

    vocab_size: int
    hidden_size: int
    layers: int
    intermediate_size: int
    max_positions: int


@dataclass(frozen=True)
class Converted:
    """What a conversion found: the architecture, the heads used, a tied MLM decoder, tensors left out."""

    shape: UerShape
    heads: int
    tied: bool
    ignored: list[str]


def convert_uer_checkpoint(checkpoint: Path, vocab_path: Path, output: Path, heads: int | None = None,
                           options: TokenOptions = TokenOptions()) -> Converted:
    """Write the pre-trained model folder (etbert.models.etbert.pretrained) of an official checkpoint.

    ``options`` are stored as the model's Datagram2Token settings; the authors cut packets differently
    (frame bytes from offset 38), so a converted model is a starting point for fine-tuning on our tokens.
    """
    state = load_uer_state_dict(checkpoint)
    try:
        tokenizer = make_tokenizer(read_vocab(vocab_path))
    except VocabError as error:
        raise UerError(str(error)) from error
    model = convert_state_dict(state, vocab_size=len(tokenizer), heads=heads, pad_token_id=tokenizer.pad_token_id)
    save_pretrained_model(model, tokenizer, options, output)
    config = model.config
    return Converted(shape=uer_shape(state), heads=config.num_attention_heads, tied=config.tie_word_embeddings,
                     ignored=ignored_keys(state, config.num_hidden_layers))


def load_uer_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a UER checkpoint, without any "module." prefix (left by DataParallel training)."""
    path = Path(path)
    if not path.is_file():
        raise UerError(f"{path} does not exist")
    with open(path, "rb") as handle:
        pickled = handle.read(1) == b"\x80"  # the PROTO opcode of torch's legacy (non-zip) format
    if not (zipfile.is_zipfile(path) or pickled):
        raise UerError(f"{path} is not a PyTorch checkpoint (neither a torch.save archive nor a pickle)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL (\S+)", str(error))
        what = f" ({found.group(1)})" if found else ""
        raise UerError(f"{path} holds pickled Python objects{what} besides tensors, which are never unpickled "
                       f"here (torch.load weights_only): save only the model's state_dict()") from error
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as error:
        raise UerError(f"{path} is not a readable PyTorch checkpoint: {str(error).strip().splitlines()[0]}") from error
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise UerError(f"{path} is not a state dict (a mapping of names to tensors)")
    return {key.removeprefix("module."): value for key, value in state.items()}


def uer_shape(state: dict[str, torch.Tensor]) -> UerShape:
    """The architecture read off the tensors; a state dict missing BERT's keys is one error naming a few."""
    layers = 0
    while f"{_LAYER_PREFIX}{layers}.{_LAYER_PROBE}" in state:
        layers += 1
    missing = [key for key in _uer_keys(max(layers, 1)) if key not in state]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise UerError(f"not a UER BERT (ET-BERT) state dict: missing {shown}")
    words = state["embedding.word_embedding.weight"]
    return UerShape(vocab_size=words.shape[0], hidden_size=words.shape[1], layers=layers,
                    intermediate_size=state[f"{_LAYER_PREFIX}0.feed_forward.linear_1.weight"].shape[0],
                    max_positions=state["embedding.position_embedding.weight"].shape[0])


def hf_config(shape: UerShape, heads: int | None = None, pad_token_id: int = 0,
                tie_word_embeddings: bool = False) -> BertConfig:
    """The Hugging Face config of the same network."""
    if heads is None:
        if shape.hidden_size % 64:
            raise UerError(f"hidden size {shape.hidden_size} is not a multiple of 64: give the number of heads")
        heads = shape.hidden_size // 64
    if heads < 1 or shape.hidden_size % heads:
        raise UerError(f"hidden size {shape.hidden_size} does not split into {heads} attention heads")
    return BertConfig(vocab_size=shape.vocab_size, hidden_size=shape.hidden_size,
                      num_hidden_layers=shape.layers, num_attention_heads=heads,
                      intermediate_size=shape.intermediate_size, max_position_embeddings=shape.max_positions,
                      type_vocab_size=2, hidden_act="gelu", layer_norm_eps=HF_LAYER_NORM_EPS,
                      pad_token_id=pad_token_id, tie_word_embeddings=tie_word_embeddings)


def hf_state_dict(state: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """UER tensors under BertForPreTraining's names, segments and LayerNorms adjusted as documented above."""
    hf: dict[str, torch.Tensor] = {}
    for hf_key, uer_key in _renames(layers):
        tensor = state[uer_key]
        if uer_key.endswith(".gamma"):
            tensor = _bessel_folded(tensor)
        elif uer_key == "embedding.segment_embedding.weight":
            if tensor.shape[0] != 3:
                raise UerError(f"{uer_key} has {tensor.shape[0]} rows; UER BERT has 3 (padding, A, B)")
            tensor = tensor[1:3]
        hf[hf_key] = tensor.float()  # load_state_dict copies it into the model
    hf["cls.predictions.decoder.bias"] = hf["cls.predictions.bias"]
    return hf


def convert_state_dict(state: dict[str, torch.Tensor], vocab_size: int | None = None, heads: int | None = None,
                       pad_token_id: int = 0) -> BertForPreTraining:
    """A UER BERT state dict as an eval-mode `BertForPreTraining` (no vocab: ``vocab_size`` only checks rows)."""
    shape = uer_shape(state)
    if vocab_size is not None and vocab_size != shape.vocab_size:
        raise UerError(f"the vocab has {vocab_size} tokens but the checkpoint's word embedding has "
                       f"{shape.vocab_size} rows: use the vocab the model was trained with")
    tied = torch.equal(state["target.mlm_linear_2.weight"], state["embedding.word_embedding.weight"])
    model = BertForPreTraining(hf_config(shape, heads, pad_token_id, tie_word_embeddings=tied))
    try:
        model.load_state_dict(hf_state_dict(state, shape.layers), strict=True)
    except RuntimeError as error:  # shapes that no single BERT has (e.g. a truncated layer)
        detail = " ".join(str(error).split())
        raise UerError(f"the checkpoint's tensors do not fit one BERT: {detail[:300]}") from error
    return model.eval()


def ignored_keys(state: dict[str, torch.Tensor], layers: int) -> list[str]:
    """Tensors of the checkpoint that BERT has no place for (e.g. a fine-tuned classifier's output layers)."""
    used = {uer_key for _, uer_key in _renames(layers)}
    return sorted(key for key in state if key not in used)


def _bessel_folded(gamma: torch.Tensor) -> torch.Tensor:
    """UER divides by the unbiased std; folding sqrt((N-1)/N) into gamma turns that into the biased one."""
    n = gamma.shape[0]
    return gamma * math.sqrt((n - 1) / n)


def _uer_keys(layers: int) -> list[str]:
    return [uer_key for _, uer_key in _renames(layers)]


def _renames(layers: int) -> list[tuple[str, str]]:
    """(BertForPreTraining key, UER key) for every tensor of the network."""
    pairs = [
        ("bert.embeddings.word_embeddings.weight", "embedding.word_embedding.weight"),
        ("bert.embeddings.position_embeddings.weight", "embedding.position_embedding.weight"),
        ("bert.embeddings.token_type_embeddings.weight", "embedding.segment_embedding.weight"),
        *_layer_norm("bert.embeddings.LayerNorm", "embedding.layer_norm"),
    ]
    for i in range(layers):
        hf, uer = f"bert.encoder.layer.{i}", f"{_LAYER_PREFIX}{i}"
        for j, name in enumerate(("query", "key", "value")):
            pairs += _linear(f"{hf}.attention.self.{name}", f"{uer}.self_attn.linear_layers.{j}")
        pairs += _linear(f"{hf}.attention.output.dense", f"{uer}.self_attn.final_linear")
        pairs += _layer_norm(f"{hf}.attention.output.LayerNorm", f"{uer}.layer_norm_1")
        pairs += _linear(f"{hf}.intermediate.dense", f"{uer}.feed_forward.linear_1")
        pairs += _linear(f"{hf}.output.dense", f"{uer}.feed_forward.linear_2")
        pairs += _layer_norm(f"{hf}.output.LayerNorm", f"{uer}.layer_norm_2")
    pairs += [
        *_linear("cls.predictions.transform.dense", "target.mlm_linear_1"),
        *_layer_norm("cls.predictions.transform.LayerNorm", "target.layer_norm"),
        ("cls.predictions.decoder.weight", "target.mlm_linear_2.weight"),
        ("cls.predictions.bias", "target.mlm_linear_2.bias"),
        *_linear("bert.pooler.dense", "target.nsp_linear_1"),
        *_linear("cls.seq_relationship", "target.nsp_linear_2"),
    ]
    return pairs


def _linear(hf: str, uer: str) -> list[tuple[str, str]]:
    return [(f"{hf}.weight", f"{uer}.weight"), (f"{hf}.bias", f"{uer}.bias")]


def _layer_norm(hf: str, uer: str) -> list[tuple[str, str]]:
    return [(f"{hf}.weight", f"{uer}.gamma"), (f"{hf}.bias", f"{uer}.beta")]
