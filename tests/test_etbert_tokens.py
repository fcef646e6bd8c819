"""Datagram2Token and the vocabularies: bigrams of real packets, their ids, and the official vocab layout."""

from __future__ import annotations

import numpy as np
import pytest

from etbert.models.etbert.tokens import BigramEncoder, TokenOptions, bigrams, corpus_texts, packet_view
from etbert.models.etbert.vocab import (SPECIAL_TOKENS, VocabError, bigram_vocab, make_tokenizer, read_vocab,
                                        train_vocab, write_vocab)


@pytest.fixture(scope="module")
def full_tokenizer():
    return make_tokenizer(bigram_vocab())


@pytest.fixture(scope="module")
def real_packets(lab_tables):
    flows = lab_tables["train"].slice(0, 60)
    return [(data, offset) for packets, offsets in zip(flows.column("pkt_bytes").to_pylist(),
                                                       flows.column("pkt_payload_offset").to_pylist())
            for data, offset in zip(packets, offsets)]


def test_bigrams_overlap_with_a_stride_of_one_byte():
    assert bigrams(bytes.fromhex("dcfe18")) == ["dcfe", "fe18"]
    assert bigrams(b"") == [] and bigrams(b"\x01") == []
    assert bigrams(bytes(range(10))) == [f"{i:02x}{i + 1:02x}" for i in range(9)]


def test_payload_view_of_packets_with_and_without_payload():
    packet = bytes.fromhex("4500") + bytes(38) + b"hello"
    assert packet_view(packet, 40, payload_only=False) == packet
    assert packet_view(packet, 40, payload_only=True) == b"hello"
    assert packet_view(packet[:40], 40, payload_only=True) == b""  # a bare ACK: empty payload
    assert packet_view(packet, -1, payload_only=True) == b""  # no transport header parsed


def test_full_vocabulary_has_official_special_ids_and_every_bigram(full_tokenizer):
    tokens = bigram_vocab()
    assert len(tokens) == 65541 and tokens[:5] == list(SPECIAL_TOKENS)
    assert (full_tokenizer.pad_token_id, full_tokenizer.sep_token_id, full_tokenizer.cls_token_id,
            full_tokenizer.unk_token_id, full_tokenizer.mask_token_id) == (0, 1, 2, 3, 4)
    encoder = BigramEncoder(full_tokenizer)
    assert encoder.encode(bytes.fromhex("dcfe18")).tolist() == [0xDCFE + 5, 0xFE18 + 5]
    assert encoder.encode(b"").tolist() == [] and encoder.encode(b"\xff").tolist() == []


def test_real_packets_round_trip_through_the_full_vocabulary(full_tokenizer, real_packets):
    encoder = BigramEncoder(full_tokenizer)
    for data, offset in real_packets:
        for view in (packet_view(data, offset, False), packet_view(data, offset, True)):
            ids = encoder.encode(view)
            # the table look-up gives what the tokenizer gives for the bigram text
            assert ids.tolist() == full_tokenizer(" ".join(bigrams(view)), add_special_tokens=False)["input_ids"]
            words = full_tokenizer.convert_ids_to_tokens(ids.tolist())
            rebuilt = bytes.fromhex(words[0] + "".join(word[2:] for word in words[1:])) if words else view[:0]
            assert rebuilt == (view if len(view) >= 2 else b"")


def test_trained_wordpiece_vocabulary_spells_rare_bigrams_in_pieces(lab_tables, real_packets, tmp_path):
    tokens = train_vocab(corpus_texts(lab_tables["train"], TokenOptions()), vocab_size=400)
    assert tokens[:5] == list(SPECIAL_TOKENS) and len(tokens) == 400
    write_vocab(tokens, tmp_path / "vocab.txt")
    assert read_vocab(tmp_path / "vocab.txt") == tokens
    tokenizer = make_tokenizer(tokens)
    encoder = BigramEncoder(tokenizer)
    assert not encoder.one_piece  # 400 tokens cannot hold every bigram: pieces, no [UNK]
    for data, _ in real_packets[:40]:
        ids = encoder.encode(data)
        assert ids.tolist() == tokenizer(" ".join(bigrams(data)), add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids.tolist()
        assert tokenizer.decode(ids.tolist()).split() == bigrams(data)


def test_official_vocab_file_layout_is_read_as_is(tmp_path):
    # the released vocab: specials first in the order [PAD] [SEP] [CLS] [UNK] [MASK], then learnt tokens
    lines = [*SPECIAL_TOKENS, "0000", "4500", "##00", "ffff"]
    (tmp_path / "encryptd_vocab.txt").write_text("\n".join(lines) + "\n")
    tokens = read_vocab(tmp_path / "encryptd_vocab.txt")
    assert tokens == lines
    tokenizer = make_tokenizer(tokens)
    assert tokenizer("4500 ffff")["input_ids"] == [2, 6, 8, 1]  # [CLS] 4500 ffff [SEP]
    (tmp_path / "bad.txt").write_text("0000\n[PAD]\n")
    with pytest.raises(VocabError, match=r"\[SEP\]"):
        read_vocab(tmp_path / "bad.txt")


def test_sequences_are_framed_and_long_packets_truncated(full_tokenizer, real_packets):
    encoder = BigramEncoder(full_tokenizer)
    long_packet = max((data for data, _ in real_packets), key=len)
    assert len(long_packet) > 500
    sequence = encoder.sequence([long_packet], 126)
    assert len(sequence) == 128 and sequence[0] == 2 and sequence[-1] == 1
    assert sequence[1:-1].tolist() == encoder.encode(long_packet[:127]).tolist()
    packets = [data for data, _ in real_packets[:5]]
    sequence = encoder.sequence([*packets, b"", b"\x45"], 20)  # empty and one-byte packets add nothing
    assert sequence[1:-1].tolist() == np.concatenate([encoder.encode(p)[:20] for p in packets]).tolist()
    assert encoder.sequence([b""], 10).tolist() == [2, 1]
