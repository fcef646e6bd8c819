"""Pre-training on real bursts: masking, learning, exact resume after a kill, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from etbert.cli import app
from etbert.models.etbert.corpus import CORPUS_COLUMNS, CorpusError, read_corpus
from etbert.models.etbert.pretrain import IGNORE, PretrainConfig, PretrainError, latest_checkpoint, mask_tokens, pretrain
from etbert.models.etbert.pretrained import load_pretrained_model
from etbert.models.etbert.tokens import TokenOptions, corpus_texts
from etbert.models.etbert.vocab import SPECIAL_TOKENS, read_vocab, train_vocab, write_vocab

runner = CliRunner()
LAB_CORPUS = Path(__file__).resolve().parents[1] / "data" / "lab-default"


@pytest.fixture(scope="module")
def small_vocab(lab_dataset, tmp_path_factory):
    """A 300-token WordPiece vocabulary of the corpus: keeps the tiny test models' MLM head small."""
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    write_vocab(train_vocab(corpus_texts(read_corpus([lab_dataset]), TokenOptions()), vocab_size=300), path)
    return path


def tiny(vocab, **settings) -> PretrainConfig:
    values = dict(size="tiny", vocab=str(vocab), seq_length=48, batch_size=8, lr=2e-3, max_packet_bytes=32,
                  checkpoint_every=1000, log_every=2)
    return PretrainConfig(**{**values, **settings})


def test_corpus_of_a_dataset_is_its_training_split(lab_dataset, lab_tables):
    assert read_corpus([lab_dataset]).num_rows == lab_tables["train"].num_rows
    assert read_corpus([lab_dataset], include_val=True).num_rows == lab_tables["train"].num_rows + lab_tables["val"].num_rows


def test_captures_are_a_corpus_of_all_their_flows(lab_dataset, lab_tables, tmp_path):
    ssh = read_corpus([LAB_CORPUS / "ssh"])  # a folder of captures: prepared on the fly, every flow
    one = read_corpus([LAB_CORPUS / "ssh" / "ssh-1.pcap"])
    assert 0 < one.num_rows < ssh.num_rows
    assert set(ssh.column_names) == set(CORPUS_COLUMNS)
    both = read_corpus([lab_dataset, LAB_CORPUS / "ssh" / "ssh-1.pcap"])  # datasets and captures mix
    assert both.num_rows == lab_tables["train"].num_rows + one.num_rows
    with pytest.raises(CorpusError, match="does not exist"):
        read_corpus([tmp_path / "missing"])
    (tmp_path / "notes.txt").write_text("not a capture")
    with pytest.raises(CorpusError):
        read_corpus([tmp_path])


def test_masking_picks_fifteen_percent_of_ordinary_tokens_80_10_10():
    special = torch.zeros(1000, dtype=torch.bool)
    special[:5] = True
    ordinary = torch.arange(5, 1000)
    input_ids = torch.randint(5, 1000, (400, 100))
    input_ids[:, 0], input_ids[:, 50], input_ids[:, 90:] = 2, 1, 0  # [CLS] A [SEP] B then padding
    generator = torch.Generator().manual_seed(0)
    masked, labels = mask_tokens(input_ids, special, ordinary, 0.15, 4, generator)
    target = labels != IGNORE
    assert not target[:, [0, 50]].any() and not target[:, 90:].any()  # never a special token
    assert (target.sum(dim=1) == round(88 * 0.15)).all()
    assert torch.equal(labels[target], input_ids[target])
    as_mask = (masked[target] == 4).float().mean()
    unchanged = (masked[target] == input_ids[target]).float().mean()
    assert 0.77 < as_mask < 0.83 and 0.08 < unchanged < 0.13  # 10% kept, plus random draws of the same token
    assert torch.equal(masked[~target], input_ids[~target])
    again, _ = mask_tokens(input_ids, special, ordinary, 0.15, 4, torch.Generator().manual_seed(0))
    assert torch.equal(again, masked)  # a function of the generator's seed: reproducible on resume


def test_pretraining_reduces_the_loss(lab_dataset, small_vocab, tmp_path):
    history = []
    summary = pretrain([lab_dataset], tmp_path / "model", tiny(small_vocab, max_steps=40, mlm_weight=1.0),
                       device="cpu", on_step=lambda step, total, metrics: history.append(metrics))
    assert summary["steps"] == 40 and len(history) == 40
    first = sum(m["mlm_loss"] for m in history[:8]) / 8
    last = sum(m["mlm_loss"] for m in history[-8:]) / 8
    assert last < first - 0.5
    assert sum(m["mlm_accuracy"] for m in history[-8:]) > sum(m["mlm_accuracy"] for m in history[:8])
    model, tokenizer, options = load_pretrained_model(tmp_path / "model")
    assert model.config.num_hidden_layers == 2 and len(tokenizer) == 300 and options.max_packet_bytes == 32
    assert read_vocab(tmp_path / "model" / "vocab.txt")[:5] == list(SPECIAL_TOKENS)
    assert "step 40/40" in (tmp_path / "model" / "pretrain.log").read_text()


class Killed(Exception):
    pass


def test_resume_after_a_kill_gives_the_weights_of_an_uninterrupted_run(lab_dataset, small_vocab, tmp_path):
    config = tiny(small_vocab, max_steps=6, checkpoint_every=3, batch_size=4)
    pretrain([lab_dataset], tmp_path / "straight", config, device="cpu")

    def kill_at_step_4(step, total, metrics):
        if step == 4:  # step 4 done but not checkpointed: it is lost, as in a kill
            raise Killed

    with pytest.raises(Killed):
        pretrain([lab_dataset], tmp_path / "killed", config, device="cpu", on_step=kill_at_step_4)
    checkpoint = latest_checkpoint(tmp_path / "killed")
    assert checkpoint.name == "step-00000003"
    assert json.loads((checkpoint / "state.json").read_text())["step"] == 3
    at_step_3 = load_file(checkpoint / "model.safetensors")
    with pytest.raises(PretrainError, match="resume"):
        pretrain([lab_dataset], tmp_path / "killed", config, device="cpu")
    steps = []
    pretrain([lab_dataset], tmp_path / "killed", config, device="cpu", resume=True,
             on_step=lambda step, total, metrics: steps.append(step))
    assert steps == [4, 5, 6]
    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "killed" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(resumed[name], at_step_3[name])  # steps 4-6 did change the weights


def test_cli_vocab_and_pretrain(lab_dataset, tmp_path):
    result = runner.invoke(app, ["vocab", str(lab_dataset), "-o", str(tmp_path / "vocab.txt"), "--size", "300"])
    assert result.exit_code == 0, result.output
    assert "300 tokens" in result.output
    assert read_vocab(tmp_path / "vocab.txt")[:5] == list(SPECIAL_TOKENS)
    result = runner.invoke(app, ["vocab", "-o", str(tmp_path / "full.txt")])
    assert result.exit_code == 0 and len(read_vocab(tmp_path / "full.txt")) == 65541

    arguments = ["pretrain", str(lab_dataset), "-o", str(tmp_path / "model"), "--config", "tiny", "--vocab",
                 str(tmp_path / "vocab.txt"), "--max-steps", "3", "--batch-size", "4", "--seq-length", "32",
                 "--checkpoint-every", "2", "--device", "cpu"]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "3 steps over" in result.output and "model written" in result.output
    model, tokenizer, options = load_pretrained_model(tmp_path / "model")
    assert len(tokenizer) == 300 and not options.payload_only
    assert latest_checkpoint(tmp_path / "model").name == "step-00000003"

    result = runner.invoke(app, arguments)  # the folder holds a run: refused without --resume
    assert result.exit_code == 2 and "resume" in result.output
    result = runner.invoke(app, [*arguments, "--resume"])  # already complete: nothing left to do
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["pretrain", str(tmp_path / "missing"), "-o", str(tmp_path / "other")])
    assert result.exit_code == 2 and "does not exist" in result.output
