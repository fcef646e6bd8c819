"""ET-BERT vocabularies and the tokenizer built on them.

A vocabulary is a list of tokens (id = position), stored as ``vocab.txt`` with one token a line, the
format of the official release (60,005 entries). The special tokens keep the official ids
[PAD]=0 [SEP]=1 [CLS]=2 [UNK]=3 [MASK]=4 in every vocabulary made here. Two kinds are made:

- the full bigram vocabulary: the five specials and all 65,536 four-hex-digit bigrams (``0000``..``ffff``);
- a WordPiece vocabulary trained with ``tokenizers`` on a corpus's bigram text, as the official code
  does: frequent bigrams become tokens, rare ones are spelt with ``##`` pieces.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import BertTokenizerFast

SPECIAL_TOKENS = ("[PAD]", "[SEP]", "[CLS]", "[UNK]", "[MASK]")  # the official order: ids 0..4
BIGRAMS = 65536
VOCAB_FILE = "vocab.txt"


class VocabError(Exception):
    """A vocabulary file is unusable (one clear line)."""


def bigram_vocab() -> list[str]:
    """The five specials followed by every bigram, so bigram value v has id v + 5."""
    return [*SPECIAL_TOKENS, *(f"{value:04x}" for value in range(BIGRAMS))]


def read_vocab(path: Path) -> list[str]:
    """Tokens of a ``vocab.txt`` (one a line, id = line number), e.g. the official ET-BERT vocabulary."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise VocabError(f"cannot read vocabulary {path}: {error}") from error
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    tokens = [token.rstrip("\r") for token in tokens]
    missing = [token for token in SPECIAL_TOKENS if token not in tokens]
    if missing:
        raise VocabError(f"vocabulary {path} lacks the special token(s) {', '.join(missing)}")
    if len(set(tokens)) != len(tokens):
        raise VocabError(f"vocabulary {path} lists some tokens twice")
    return tokens


def write_vocab(tokens: list[str], path: Path) -> None:
    """Write ``vocab.txt`` atomically (a reader never sees half a file)."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8")
    os.replace(partial, path)


def train_vocab(texts: Iterable[str], vocab_size: int = BIGRAMS, min_frequency: int = 2) -> list[str]:
    """A WordPiece vocabulary learnt from lines of space-separated bigrams (the official recipe)."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    if len(tokens) <= len(SPECIAL_TOKENS):
        raise VocabError("the corpus holds no bigrams to learn a vocabulary from")
    return tokens


def make_tokenizer(tokens: list[str]) -> BertTokenizerFast:
    """A standard BERT WordPiece tokenizer over the vocabulary (no lower-casing: bigrams are lower-case hex)."""
    return BertTokenizerFast(vocab={token: i for i, token in enumerate(tokens)}, do_lower_case=False,
                             tokenize_chinese_chars=False)


def tokenizer_tokens(tokenizer: BertTokenizerFast) -> list[str]:
    """The tokenizer's vocabulary as a list (id = position), for ``vocab.txt``."""
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    if [vocab[token] for token in tokens] != list(range(len(tokens))):
        raise VocabError("the tokenizer's ids are not contiguous from 0")
    return tokens
