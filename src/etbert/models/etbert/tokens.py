"""Datagram2Token: the bytes of a packet as ET-BERT tokens.

A packet's bytes (as stored in the dataset: from the IP header on, already anonymised by the dataset's
policy; or only its transport payload) become overlapping hex bigrams with a stride of one byte, as in the
official code: ``dc fe 18`` -> ``dcfe fe18``. A packet of n bytes gives n - 1 bigrams (none below two bytes).

Tokens are looked up with the vocabulary's own tokenizer. WordPiece handles each space-separated word on
its own, so every one of the 65,536 bigrams is tokenised once up front and packets are encoded by table
look-up: the ids are exactly what the tokenizer gives for the bigram text, at array speed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from transformers import PreTrainedTokenizerFast

from etbert.models.etbert.vocab import BIGRAMS


@dataclass(frozen=True)
class TokenOptions:
    """How packets become tokens; stored with a pre-trained model (``etbert.json``)."""

    payload_only: bool = False  # tokens from the transport payload only (else from the IP header on)
    max_packet_bytes: int = 128  # bytes of one packet used in pre-training BURSTs

    def __post_init__(self):
        if self.max_packet_bytes < 2:
            raise ValueError(f"max_packet_bytes must be at least 2 (one bigram), not {self.max_packet_bytes}")


def packet_view(data: bytes, payload_offset: int, payload_only: bool) -> bytes:
    """The bytes a packet contributes: all of them, or its payload (nothing when it has none)."""
    if not payload_only:
        return data
    return data[payload_offset:] if payload_offset >= 0 else b""


def bigrams(data: bytes) -> list[str]:
    """The overlapping hex bigrams of ``data``: ``b'\\xdc\\xfe\\x18'`` -> ``['dcfe', 'fe18']``."""
    text = data.hex()
    return [text[i:i + 4] for i in range(0, len(text) - 2, 2)]


def corpus_texts(flows: pa.Table, options: TokenOptions) -> Iterator[str]:
    """Each packet's bigrams as a line of text: what a WordPiece vocabulary is trained on."""
    for packets, offsets in zip(flows.column("pkt_bytes").to_pylist(), flows.column("pkt_payload_offset").to_pylist()):
        for data, offset in zip(packets, offsets):
            yield " ".join(bigrams(packet_view(data, offset, options.payload_only)[:options.max_packet_bytes]))


class BigramEncoder:
    """Token ids of packet bytes under one tokenizer."""

    def __init__(self, tokenizer: PreTrainedTokenizerFast):
        # one text of all bigrams in order: the word index of each piece tells which bigram it spells
        text = " ".join(f"{value:04x}" for value in range(BIGRAMS))
        encoding = tokenizer.backend_tokenizer.encode(text, add_special_tokens=False)
        self.ids = np.array(encoding.ids, dtype=np.int64)
        self.lengths = np.bincount(np.array(encoding.word_ids, dtype=np.int64), minlength=BIGRAMS)
        self.starts = np.cumsum(self.lengths) - self.lengths
        self.one_piece = bool((self.lengths == 1).all())
        self.cls, self.sep = tokenizer.cls_token_id, tokenizer.sep_token_id

    def encode(self, data: bytes) -> np.ndarray:
        """Token ids of the bigrams of ``data`` (no special tokens)."""
        values = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        codes = values[:-1] * 256 + values[1:]
        if self.one_piece:
            return self.ids[codes]
        lengths = self.lengths[codes]
        offsets = np.cumsum(lengths) - lengths
        index = np.arange(int(lengths.sum())) - np.repeat(offsets, lengths) + np.repeat(self.starts[codes], lengths)
        return self.ids[index]

    def sequence(self, packets: list[bytes], tokens_per_packet: int) -> np.ndarray:
        """A classifier's input: [CLS], at most ``tokens_per_packet`` tokens of each packet in turn, [SEP]."""
        parts = [self.encode(data)[:tokens_per_packet] for data in packets]
        return np.concatenate([[self.cls], *parts, [self.sep]]).astype(np.int64)
