"""The byte matrix and the LSTM + self-attention model over contextual (ELMo-style) byte embeddings."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from etbert.evaluation.metrics import classification_metrics
from etbert.features.byte_matrix import PAD, byte_matrix
from etbert.models.base import ModelError, seed_everything
from etbert.models.lstm_attention import ContextualEmbedding, pretrain_language_model
from etbert.models.registry import create_model, load_model

# small sizes: the defaults (N=6, M=128, LSTM 256) are for real runs
SMALL = {"packets": 3, "bytes_per_packet": 32, "lm_dim": 16, "lstm_units": 32, "attention_units": 32,
         "dense_units": 16, "lm_epochs": 1, "learning_rate": 0.003}


def every_nth(flows: pa.Table, n: int) -> pa.Table:
    """A smaller table with every class still in it (the tables are ordered by class)."""
    return flows.take(np.arange(0, flows.num_rows, n))


def packet_table(flows: list[list[bytes]], payload_offsets: list[list[int]]) -> pa.Table:
    return pa.table({"pkt_bytes": pa.array(flows, pa.list_(pa.binary())),
                     "pkt_payload_offset": pa.array(payload_offsets, pa.list_(pa.int16()))})


def test_byte_matrix_rows_are_each_packets_first_bytes_then_padding():
    table = packet_table([[b"\x45\x00\x01", b"", b"\x01\x02\x03\x04\x05\x06"], [], [b"\xff\x00"]],
                         [[2, -1, 4], [], [-1]])
    matrix = byte_matrix(table, packets=2, bytes_per_packet=4)
    assert matrix.shape == (3, 2, 4)
    assert matrix.tolist() == [
        [[0x45, 0x00, 0x01, PAD], [PAD] * 4],  # third packet beyond N
        [[PAD] * 4, [PAD] * 4],  # a flow without packets
        [[0xFF, 0x00, PAD, PAD], [PAD] * 4],  # a missing second packet
    ]
    payload = byte_matrix(table, packets=3, bytes_per_packet=4, payload_only=True)
    assert payload[0].tolist() == [[0x01, PAD, PAD, PAD], [PAD] * 4, [0x05, 0x06, PAD, PAD]]
    assert (payload[2] == PAD).all()  # payload offset -1: no payload


@pytest.mark.parametrize("bytes_per_packet, payload_only", [(128, False), (108, False), (64, True)])
def test_byte_matrix_matches_the_stored_bytes_of_real_flows(lab_tables, bytes_per_packet, payload_only):
    flows = lab_tables["test"]
    packets = 12  # more than the dataset keeps (K = 10): the last rows are all padding
    matrix = byte_matrix(flows, packets, bytes_per_packet, payload_only)
    assert matrix.shape == (flows.num_rows, packets, bytes_per_packet)
    for i, (stored, offsets) in enumerate(zip(flows.column("pkt_bytes").to_pylist(),
                                              flows.column("pkt_payload_offset").to_pylist())):
        for j in range(packets):
            data = b""
            if j < len(stored):
                data = stored[j] if not payload_only else (stored[j][offsets[j]:] if offsets[j] >= 0 else b"")
            expected = list(data[:bytes_per_packet]) + [PAD] * (bytes_per_packet - len(data[:bytes_per_packet]))
            assert matrix[i, j].tolist() == expected, (i, j)


def test_language_model_pretraining_lowers_held_out_loss_and_gives_contextual_vectors(lab_tables):
    seed_everything(0)
    train = torch.from_numpy(byte_matrix(lab_tables["train"], 2, 32).reshape(-1, 64).astype(np.int64))
    held_out = torch.from_numpy(byte_matrix(lab_tables["val"], 2, 32).reshape(-1, 64).astype(np.int64))
    embedding = ContextualEmbedding(16)
    model = embedding.language_model
    with torch.no_grad():
        before = model.loss(held_out).item()
    losses = pretrain_language_model(model, train, epochs=2, batch_size=32, learning_rate=0.01,
                                     on_progress=lambda *_: None)
    with torch.no_grad():
        after = model.loss(held_out).item()
    assert before > 5.0  # about ln(257): uniform over byte values
    assert after < before - 1.5 and losses[-1] < losses[0]
    # one byte value in two places: the same token embedding, different contextual vectors
    tokens = held_out[:1]
    value = int(tokens[0, 0])
    other = int(np.flatnonzero(tokens[0].numpy() == value)[1])
    with torch.no_grad():
        layers = model.layers(tokens)
        contextual = embedding(tokens)[0]
    assert torch.equal(layers[0][0, 0], layers[0][0, other])
    assert not torch.allclose(contextual[0], contextual[other])


def test_beats_the_majority_class_on_real_flows(lab_tables):
    scores = {}
    for name, settings in (("majority", {}), ("lstm-attention", {**SMALL, "epochs": 6})):
        model = create_model(name, settings).fit(lab_tables["train"], lab_tables["val"], seed=0)
        truth = lab_tables["test"].column("label").to_pylist()
        scores[name] = classification_metrics(truth, model.predict(lab_tables["test"]), model.classes_)
    assert scores["lstm-attention"]["macro_f1"] > scores["majority"]["macro_f1"] + 0.2
    assert scores["lstm-attention"]["accuracy"] > scores["majority"]["accuracy"] + 0.15


def test_save_and_load_give_identical_predictions(lab_tables, tmp_path):
    settings = {**SMALL, "packets": "2", "bytes_per_packet": "108", "freeze_embeddings": "false", "epochs": "1"}
    model = create_model("lstm-attention", settings).fit(every_nth(lab_tables["train"], 4), seed=1)
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.config == model.config and loaded.config.bytes_per_packet == 108
    assert loaded.classes_ == model.classes_
    test = lab_tables["test"]
    assert np.array_equal(loaded.predict_proba(test), model.predict_proba(test))
    assert (tmp_path / "model" / "model.safetensors").exists()


def test_frozen_embeddings_keep_the_pretrained_language_model(lab_tables):
    train = every_nth(lab_tables["train"], 6)

    def language_model_after(freeze: bool, epochs: int) -> dict:
        settings = {**SMALL, "packets": 2, "freeze_embeddings": freeze, "epochs": epochs}
        model = create_model("lstm-attention", settings).fit(train, seed=3)
        return {k: v.clone() for k, v in model.network_.embedding.language_model.state_dict().items()}

    frozen_one, frozen_two = language_model_after(True, 1), language_model_after(True, 2)
    tuned_one = language_model_after(False, 1)
    assert all(torch.equal(frozen_one[k], frozen_two[k]) for k in frozen_one)  # classifier epochs leave it be
    assert not all(torch.equal(frozen_one[k], tuned_one[k]) for k in frozen_one)  # fine-tuning moves it


@pytest.mark.parametrize("settings", [{"packets": 0}, {"bytes_per_packet": "-1"}, {"device": "tpu"}])
def test_bad_settings_are_one_clear_error(settings):
    with pytest.raises(ModelError):
        create_model("lstm-attention", settings)
