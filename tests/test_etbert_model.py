"""The fine-tuned classifiers on real flows: learning, pre-trained weights, packet-level outputs, save/load."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
from sklearn.metrics import f1_score
from transformers import BertForPreTraining

from etbert.models.base import ModelError
from etbert.models.etbert.pretrained import bert_config, load_pretrained_model, save_pretrained_model
from etbert.models.etbert.tokens import TokenOptions, corpus_texts
from etbert.models.etbert.vocab import make_tokenizer, train_vocab
from etbert.models.registry import create_model, load_model

# easily told apart: UDP (QUIC, WireGuard) and TCP (SSH, TLS) with different sizes and first bytes
CLASSES = ["quic", "ssh", "tls-download", "wireguard"]


def some_classes(table: pa.Table) -> pa.Table:
    return table.filter(pc.is_in(table.column("label"), pa.array(CLASSES)))


@pytest.fixture(scope="module")
def tiny_pretrained(lab_tables, tmp_path_factory):
    """A tiny, untrained model in the pre-trained format, with a 300-token vocabulary of the corpus."""
    tokenizer = make_tokenizer(train_vocab(corpus_texts(lab_tables["train"], TokenOptions()), vocab_size=300))
    torch.manual_seed(0)
    model = BertForPreTraining(bert_config("tiny", tokenizer))
    path = tmp_path_factory.mktemp("pretrained") / "model"
    save_pretrained_model(model, tokenizer, TokenOptions(payload_only=True), path)
    return path


def test_flow_model_from_scratch_beats_chance_and_round_trips(lab_tables, tmp_path):
    train, val, test = (some_classes(lab_tables[split]) for split in ("train", "val", "test"))
    model = create_model("etbert-flow", {"size": "tiny", "epochs": 6, "batch_size": 16, "lr": 3e-3,
                                         "seq_length": 128, "device": "cpu"})
    progress = []
    model.fit(train, val, seed=0, on_progress=lambda stage, done, total: progress.append(stage))
    assert progress[0] == "epoch 1/6" and progress[-1] == "epoch 6/6"
    truth = test.column("label").to_pylist()
    assert model.classes_ == CLASSES
    macro_f1 = f1_score(truth, model.predict(test), average="macro")
    assert macro_f1 > 0.5  # chance is 0.25 with four classes
    # bf16 autocast (the default where the CPU multiplies bf16 natively) agrees with full precision
    model.config.precision = "bf16"
    half = model.predict_proba(test)
    model.config.precision = "fp32"
    full = model.predict_proba(test)
    model.config.precision = "auto"
    assert (half.argmax(axis=1) == full.argmax(axis=1)).mean() >= 0.95 and np.abs(half - full).max() < 0.05
    for sequence in model.flow_sequences(test):  # [CLS] + 5 packets x 25 tokens at most + [SEP]
        assert sequence[0] == 2 and sequence[-1] == 1 and len(sequence) <= 127

    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").exists() and (tmp_path / "model" / "vocab.txt").exists()
    loaded = load_model(tmp_path / "model")
    assert loaded.classes_ == CLASSES
    np.testing.assert_allclose(loaded.predict_proba(test), model.predict_proba(test), atol=1e-6)
    # the folder is also a standard transformers classifier
    network, _, options = load_pretrained_model(tmp_path / "model", model_class=type(model.network))
    assert network.config.id2label[0] == "quic" and not options.payload_only


def test_linear_probe_keeps_the_pretrained_encoder(lab_tables, tiny_pretrained):
    train = some_classes(lab_tables["train"])
    model = create_model("etbert-flow", {"pretrained": str(tiny_pretrained), "freeze_encoder": True, "epochs": 1,
                                         "seq_length": 64, "device": "cpu"})
    model.fit(train, seed=0)
    pretrained, _, _ = load_pretrained_model(tiny_pretrained)
    for name, tensor in pretrained.bert.state_dict().items():
        assert torch.equal(model.network.bert.state_dict()[name], tensor), name
    assert model.options.payload_only  # inherited from the pre-trained model's etbert.json
    assert len(model.tokenizer) == 300


def test_packet_model_averages_its_packets_and_reports_them(lab_tables, tiny_pretrained):
    train, test = some_classes(lab_tables["train"]), some_classes(lab_tables["test"])
    model = create_model("etbert-packet", {"pretrained": str(tiny_pretrained), "epochs": 2, "lr": 2e-3,
                                           "packets": 3, "payload_only": False, "device": "cpu"})
    model.fit(train, seed=0)
    assert model.config.seq_length == 128 and not model.options.payload_only
    y, probabilities = model.packet_predictions(test)
    assert probabilities.shape == (len(y), len(CLASSES)) and len(y) <= 3 * test.num_rows
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    labels = test.column("label").to_pylist()
    assert sorted(set(np.array(model.classes_)[y])) == sorted(set(labels))
    # a flow's probabilities: the mean over its first three packets
    flow = test.slice(0, 1)
    packets = [p for p in flow.column("pkt_bytes").to_pylist()[0][:3]]
    single = model._probabilities([model.encoder.sequence([p], 126) for p in packets])
    np.testing.assert_allclose(model.predict_proba(flow)[0], single.mean(axis=0), rtol=1e-5)


def test_bad_settings_are_one_clear_error(tmp_path):
    with pytest.raises(ModelError, match="size"):
        create_model("etbert-flow", {"size": "huge"})
    with pytest.raises(ModelError, match="seq_length"):
        create_model("etbert-packet", {"seq_length": 1024})
    with pytest.raises(ModelError, match="precision"):
        create_model("etbert-flow", {"precision": "fp8"})
    model = create_model("etbert-flow", {"pretrained": str(tmp_path)})
    table = pa.table({"label": ["a", "b"], "split": ["train"] * 2, "flow_id": ["1", "2"],
                      "pkt_bytes": [[b"\x45\x00"], [b"\x45\x01"]], "pkt_payload_offset": [[-1], [-1]]})
    with pytest.raises(ModelError, match="etbert.json"):
        model.fit(table)
