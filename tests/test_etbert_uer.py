"""The authors' checkpoints: a UER-layout state dict, converted, computes what UER's equations compute.

The reference below is written from UER-py's layer definitions (embedding sum -> LayerNorm with unbiased
std + eps; post-LN transformer layers with erf GELU; MLM head linear -> GELU -> LayerNorm -> linear; NSP head
linear -> tanh -> linear on [CLS]), on a tiny random network, never through the converter's own code.
"""

from __future__ import annotations

import argparse
import math

import pytest
import torch
from typer.testing import CliRunner

from etbert.cli import app
from etbert.models.etbert.uer import (
    UerError,
    convert_state_dict,
    load_uer_state_dict,
)

LAYERS, HIDDEN, HEADS, FFN, VOCAB, POSITIONS = 2, 32, 4, 64, 300, 64
# ET-BERT's vocab starts [PAD] [SEP] [CLS] [UNK] [MASK]
SPECIALS = ["[PAD]", "[SEP]", "[CLS]", "[UNK]", "[MASK]"]
# Float32 agreement after conversion. What remains of UER's std + 1e-6 against BERT's sqrt(var + 1e-12) is
# ~1e-6 / std relative (module docstring of etbert.models.etbert.uer), far below this.
ATOL = 1e-4
runner = CliRunner()


# ----- UER's equations, in plain torch ----------------------------------------------------------------


def uer_layer_norm(x, gamma, beta, eps=1e-6):
    mean = x.mean(-1, keepdim=True)
    std = x.std(-1, keepdim=True)  # unbiased, as torch.std defaults
    return gamma * (x - mean) / (std + eps) + beta


def uer_gelu(x):
    return x * 0.5 * (1.0 + torch.erf(x / math.sqrt(2.0)))


def linear(state, name, x):
    return x @ state[f"{name}.weight"].T + state[f"{name}.bias"]


def uer_attention(state, name, hidden, seg, heads):
    batch, length, width = hidden.shape
    size = width // heads
    q, k, v = (linear(state, f"{name}.linear_layers.{j}", hidden).view(batch, length, heads, size).transpose(1, 2)
               for j in range(3))
    scores = q @ k.transpose(-2, -1) / math.sqrt(size)
    scores = scores + (1.0 - (seg > 0).float())[:, None, None, :] * -10000.0  # padded keys are invisible
    context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, width)
    return linear(state, f"{name}.final_linear", context)


def uer_forward(state, src, seg, heads=HEADS):
    """(hidden states after the embedding and after each layer, MLM logits, NSP logits)."""
    s = state
    positions = torch.arange(src.shape[1])
    emb = (s["embedding.word_embedding.weight"][src] + s["embedding.position_embedding.weight"][positions]
           + s["embedding.segment_embedding.weight"][seg])
    hidden = uer_layer_norm(emb, s["embedding.layer_norm.gamma"], s["embedding.layer_norm.beta"])
    states = [hidden]
    for i in range(LAYERS):
        p = f"encoder.transformer.{i}"
        inter = uer_layer_norm(uer_attention(s, f"{p}.self_attn", hidden, seg, heads) + hidden,
                               s[f"{p}.layer_norm_1.gamma"], s[f"{p}.layer_norm_1.beta"])
        ffn = linear(s, f"{p}.feed_forward.linear_2", uer_gelu(linear(s, f"{p}.feed_forward.linear_1", inter)))
        hidden = uer_layer_norm(ffn + inter, s[f"{p}.layer_norm_2.gamma"], s[f"{p}.layer_norm_2.beta"])
        states.append(hidden)
    mlm = uer_layer_norm(uer_gelu(linear(s, "target.mlm_linear_1", hidden)),
                         s["target.layer_norm.gamma"], s["target.layer_norm.beta"])
    mlm_logits = linear(s, "target.mlm_linear_2", mlm)
    nsp_logits = linear(s, "target.nsp_linear_2", torch.tanh(linear(s, "target.nsp_linear_1", hidden[:, 0])))
    return states, mlm_logits, nsp_logits


# ----- a random network in UER's layout ---------------------------------------------------------------


def uer_state(seed=0, tied=False):
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.2):
        return torch.randn(*shape, generator=generator) * scale

    def norm(prefix):
        # gammas away from 1 and betas away from 0, so a mishandled LayerNorm shows
        return {f"{prefix}.gamma": 1.0 + rand(HIDDEN), f"{prefix}.beta": rand(HIDDEN)}

    def dense(prefix, out, inp):
        return {f"{prefix}.weight": rand(out, inp), f"{prefix}.bias": rand(out)}

    s = {"embedding.word_embedding.weight": rand(VOCAB, HIDDEN, scale=1.0),
         "embedding.position_embedding.weight": rand(POSITIONS, HIDDEN, scale=0.5),
         "embedding.segment_embedding.weight": rand(3, HIDDEN, scale=0.5),
         **norm("embedding.layer_norm")}
    for i in range(LAYERS):
        p = f"encoder.transformer.{i}"
        for j in range(3):
            s |= dense(f"{p}.self_attn.linear_layers.{j}", HIDDEN, HIDDEN)
        s |= dense(f"{p}.self_attn.final_linear", HIDDEN, HIDDEN) | norm(f"{p}.layer_norm_1")
        s |= dense(f"{p}.feed_forward.linear_1", FFN, HIDDEN) | dense(f"{p}.feed_forward.linear_2", HIDDEN, FFN)
        s |= norm(f"{p}.layer_norm_2")
    s |= dense("target.mlm_linear_1", HIDDEN, HIDDEN) | norm("target.layer_norm")
    s |= dense("target.mlm_linear_2", VOCAB, HIDDEN)
    if tied:
        s["target.mlm_linear_2.weight"] = s["embedding.word_embedding.weight"].clone()
    s |= dense("target.nsp_linear_1", HIDDEN, HIDDEN) | dense("target.nsp_linear_2", 2, HIDDEN)
    return s


def uer_batch(seed=1, length=20):
    """Three sequences the UER way: one segment (seg 1); a pair (1 then 2); one segment padded (seg 0, id 0)."""
    generator = torch.Generator().manual_seed(seed)
    src = torch.randint(5, VOCAB, (3, length), generator=generator)
    src[:, 0] = SPECIALS.index("[CLS]")
    seg = torch.ones(3, length, dtype=torch.long)
    seg[1, length // 2:] = 2
    seg[2, 13:] = 0
    src[2, 13:] = SPECIALS.index("[PAD]")
    return src, seg


def hf_outputs(model, src, seg):
    """BERT's inputs for UER's: token types 0/1 for segments 1/2, and an attention mask for seg 0."""
    with torch.no_grad():
        return model(input_ids=src, token_type_ids=(seg - 1).clamp(min=0), attention_mask=(seg > 0).long(),
                     output_hidden_states=True)


def assert_same_network(model, state, src, seg):
    states, mlm, nsp = uer_forward(state, src, seg)
    out = hf_outputs(model, src, seg)
    real = seg > 0  # UER's padded positions run on a segment row BERT does not have: nothing reads them
    assert len(out.hidden_states) == len(states)
    for ours, theirs in zip(out.hidden_states, states):
        torch.testing.assert_close(ours[real], theirs[real], atol=ATOL, rtol=0)
    torch.testing.assert_close(out.prediction_logits[real], mlm[real], atol=ATOL, rtol=0)
    torch.testing.assert_close(out.seq_relationship_logits, nsp, atol=ATOL, rtol=0)


def write_vocab(path, size=VOCAB):
    path.write_text("\n".join(SPECIALS + [f"{i:04x}" for i in range(size - len(SPECIALS))]) + "\n")
    return path


# ----- conversion ---------------------------------------------------------------------------------------


def test_converted_model_gives_uer_hidden_states_mlm_and_nsp_logits():
    state = uer_state()
    src, seg = uer_batch()
    model = convert_state_dict(state, vocab_size=VOCAB, heads=HEADS)
    assert not model.config.tie_word_embeddings  # separate MLM decoder in this checkpoint
    assert_same_network(model, state, src, seg)


def test_the_layer_norm_correction_is_what_makes_them_agree():
    """Renaming gamma as it is (BERT's biased variance against UER's unbiased std) is visibly off."""
    state = uer_state()
    src, seg = uer_batch()
    model = convert_state_dict(state, vocab_size=VOCAB, heads=HEADS)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.mul_(math.sqrt(HIDDEN / (HIDDEN - 1)))  # undo the fold
    states, _, _ = uer_forward(state, src, seg)
    naive = hf_outputs(model, src, seg).hidden_states[-1]
    assert (naive[seg > 0] - states[-1][seg > 0]).abs().max() > 100 * ATOL


def test_a_tied_decoder_stays_tied_and_module_prefixes_are_dropped(tmp_path):
    state = uer_state(seed=3, tied=True)
    path = tmp_path / "dp.bin"
    torch.save({f"module.{key}": value for key, value in state.items()}, path)
    loaded = load_uer_state_dict(path)
    assert set(loaded) == set(state)
    model = convert_state_dict(loaded, heads=HEADS)
    assert model.config.tie_word_embeddings
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()
    assert_same_network(model, state, *uer_batch(seed=4))


def test_heads_default_to_hidden_over_64_and_must_divide_the_width():
    with pytest.raises(UerError, match="multiple of 64"):
        convert_state_dict(uer_state())
    with pytest.raises(UerError, match="does not split into 5"):
        convert_state_dict(uer_state(), heads=5)


# ----- the command line ---------------------------------------------------------------------------------


def test_convert_uer_command_writes_a_model_that_loads_and_agrees(tmp_path):
    from etbert.models.etbert.pretrained import load_pretrained_model

    state = uer_state(seed=5)
    checkpoint, vocab = tmp_path / "pretrained_model.bin", write_vocab(tmp_path / "encryptd_vocab.txt")
    torch.save(state, checkpoint)
    out = tmp_path / "model"
    result = runner.invoke(app, ["convert-uer", str(checkpoint), "--vocab", str(vocab), "-o", str(out),
                                 "--heads", str(HEADS)])
    assert result.exit_code == 0, result.output
    assert "2 layers" in result.output and "hidden 32" in result.output
    model, tokenizer, _ = load_pretrained_model(out)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIALS}
    assert ids == {token: i for i, token in enumerate(SPECIALS)}  # special ids carried over from the vocab
    assert model.config.pad_token_id == 0
    encoded = tokenizer("0000 0001 0012 ffff", add_special_tokens=True)["input_ids"]
    assert encoded == [2, 5, 6, 5 + 0x12, 3, 1]  # [CLS] ... [UNK] [SEP], ids = vocab line numbers
    assert_same_network(model.eval(), state, *uer_batch(seed=6))


def test_convert_uer_errors_are_one_clear_line(tmp_path):
    vocab = write_vocab(tmp_path / "vocab.txt")
    out = str(tmp_path / "model")

    def convert(checkpoint, vocab_path=vocab):
        result = runner.invoke(app, ["convert-uer", str(checkpoint), "--vocab", str(vocab_path), "-o", out,
                                     "--heads", str(HEADS)])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        return " ".join(result.output.split())

    not_bert = tmp_path / "other.bin"
    torch.save({"fc.weight": torch.zeros(2, 2)}, not_bert)
    message = convert(not_bert)
    assert "not a UER BERT" in message and "embedding.word_embedding.weight" in message and "more" in message

    good = tmp_path / "good.bin"
    torch.save(uer_state(), good)
    message = convert(good, write_vocab(tmp_path / "short.txt", size=VOCAB - 7))
    assert "293 tokens" in message and "300 rows" in message

    pickled = tmp_path / "pickled.bin"
    torch.save({"model": uer_state(), "args": argparse.Namespace(lr=1e-4)}, pickled)
    message = convert(pickled)
    assert "pickled Python objects (argparse.Namespace)" in message and "weights_only" in message

    text = tmp_path / "notes.bin"
    text.write_text("not a checkpoint\n")
    assert "not a PyTorch checkpoint" in convert(text)
