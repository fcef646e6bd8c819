"""An ET-BERT model on disk: the one format pre-training writes, the UER converter writes, and fine-tuning reads.

    MODEL/config.json, model.safetensors    the ``transformers`` model (``save_pretrained``)
    MODEL/tokenizer.json, tokenizer_config.json   the tokenizer (``BertTokenizerFast.save_pretrained``)
    MODEL/vocab.txt                          the same vocabulary, one token a line (id = line number)
    MODEL/etbert.json                        Datagram2Token options, written last: it marks a complete model

So ``BertForPreTraining.from_pretrained(MODEL)`` and ``AutoTokenizer.from_pretrained(MODEL)`` load it with
the standard API; the fine-tuned classifiers are saved the same way (``BertForSequenceClassification``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

from transformers import BertConfig, BertForPreTraining, BertTokenizerFast, PreTrainedModel
from transformers.utils import logging as transformers_logging

from etbert.models.etbert.tokens import TokenOptions
from etbert.models.etbert.vocab import VOCAB_FILE, tokenizer_tokens, write_vocab

OPTIONS_FILE = "etbert.json"
FORMAT = 1

SIZES = {
    # for tests and smoke runs
    "tiny": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=256),
    # pre-trains on the bundled corpus in minutes on two CPU cores
    "small": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
    # BERT-base, as in the paper
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
}
MAX_POSITIONS = 512


class PretrainedError(Exception):
    """A folder is not a usable ET-BERT model (one clear line)."""


def bert_config(size: str, tokenizer: BertTokenizerFast, **settings) -> BertConfig:
    """A new model's configuration; ``settings`` add to it (e.g. the labels of a classifier)."""
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(SIZES)}")
    return BertConfig(vocab_size=len(tokenizer), max_position_embeddings=MAX_POSITIONS, type_vocab_size=2,
                      pad_token_id=tokenizer.pad_token_id, **SIZES[size], **settings)


def save_pretrained_model(model: PreTrainedModel, tokenizer: BertTokenizerFast, options: TokenOptions,
                          directory: Path) -> None:
    """Write the model format into ``directory`` (other files there are left alone).

    Files are written to a scratch folder and moved in one by one, ``etbert.json`` last, so a crash never
    leaves a folder that looks complete but holds a mix of two models.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    scratch = directory / ".saving"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        with _quiet():
            model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        write_vocab(tokenizer_tokens(tokenizer), scratch / VOCAB_FILE)
        description = {"format": FORMAT, "bigram": True, "payload_only": options.payload_only,
                       "max_packet_bytes": options.max_packet_bytes}
        (scratch / OPTIONS_FILE).write_text(json.dumps(description, indent=2))
        (directory / OPTIONS_FILE).unlink(missing_ok=True)
        for path in sorted(scratch.iterdir(), key=lambda p: p.name == OPTIONS_FILE):
            os.replace(path, directory / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def read_options(directory: Path) -> TokenOptions:
    path = Path(directory) / OPTIONS_FILE
    if not path.exists():
        raise PretrainedError(f"{directory} is not an ET-BERT model folder ({OPTIONS_FILE} missing)")
    try:
        description = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise PretrainedError(f"{path} is unreadable: {error}") from error
    if description.get("format") != FORMAT or description.get("bigram") is not True:
        raise PretrainedError(f"{path} describes format {description.get('format')!r} (bigram "
                              f"{description.get('bigram')!r}); this etbert reads format {FORMAT} with bigrams")
    try:
        return TokenOptions(payload_only=bool(description["payload_only"]),
                            max_packet_bytes=int(description["max_packet_bytes"]))
    except (KeyError, TypeError, ValueError) as error:
        raise PretrainedError(f"{path} has bad Datagram2Token options: {error}") from error


def load_pretrained_model(directory: Path, model_class: type[PreTrainedModel] = BertForPreTraining,
                          **model_arguments) -> tuple[PreTrainedModel, BertTokenizerFast, TokenOptions]:
    """(model, tokenizer, options) of a model folder; ``model_class`` may add a head (e.g. a classifier)."""
    directory = Path(directory)
    options = read_options(directory)
    try:
        with _quiet():
            tokenizer = BertTokenizerFast.from_pretrained(directory)
            model = model_class.from_pretrained(directory, **model_arguments)
    except (OSError, ValueError) as error:
        raise PretrainedError(f"cannot load the model in {directory}: {error}") from error
    if model.config.vocab_size != len(tokenizer):
        raise PretrainedError(f"{directory}: the model has {model.config.vocab_size} token embeddings but the "
                              f"tokenizer {len(tokenizer)} tokens")
    return model, tokenizer, options


@contextlib.contextmanager
def _quiet():
    """No progress bars or "newly initialised weights" notes (a new classifier head is expected, not news)."""
    verbosity = transformers_logging.get_verbosity()
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if bars:
            transformers_logging.enable_progress_bar()
