"""BURSTs of real flows and the Same-origin BURST Prediction pairs built from them."""

from __future__ import annotations

import numpy as np
import pytest

from etbert.dataset.early import first_packets
from etbert.models.etbert.bursts import corpus_halves, epoch_pairs, flow_bursts, split_burst
from etbert.models.etbert.pretrain import PretrainConfig, BurstBatches
from etbert.models.etbert.tokens import BigramEncoder, TokenOptions, packet_view
from etbert.models.etbert.vocab import bigram_vocab, make_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer(bigram_vocab())


@pytest.fixture(scope="module")
def encoder(tokenizer):
    return BigramEncoder(tokenizer)


def test_bursts_are_runs_of_same_direction_packets(lab_tables, encoder):
    flows = lab_tables["train"].slice(0, 80)
    options = TokenOptions(max_packet_bytes=64)
    # the dataset's own burst count over the stored packets
    expected_counts = first_packets(flows, 10).column("n_bursts").to_pylist()
    for row, expected in zip(flows.select(["pkt_direction", "pkt_bytes", "pkt_payload_offset"]).to_pylist(),
                             expected_counts):
        bursts = flow_bursts(row["pkt_direction"], row["pkt_bytes"], row["pkt_payload_offset"], encoder, options)
        assert len(bursts) == expected
        # a burst's tokens are its packets' tokens (each capped at 64 bytes) one after the other
        tokens = [encoder.encode(p[:64]) for p in row["pkt_bytes"]]
        starts = [0] + [i for i in range(1, len(tokens)) if row["pkt_direction"][i] != row["pkt_direction"][i - 1]]
        for burst, start, stop in zip(bursts, starts, starts[1:] + [len(tokens)]):
            assert burst.tolist() == np.concatenate(tokens[start:stop]).tolist()


def test_payload_only_bursts_read_payload_bytes(lab_tables, encoder):
    row = lab_tables["train"].select(["pkt_direction", "pkt_bytes", "pkt_payload_offset"]).slice(0, 1).to_pylist()[0]
    options = TokenOptions(payload_only=True, max_packet_bytes=1024)
    bursts = flow_bursts([0] * len(row["pkt_bytes"]), row["pkt_bytes"], row["pkt_payload_offset"], encoder, options)
    payloads = [encoder.encode(packet_view(p, o, True)) for p, o in zip(row["pkt_bytes"], row["pkt_payload_offset"])]
    assert len(bursts) == 1 and bursts[0].tolist() == np.concatenate(payloads).tolist()


def test_halves_split_a_burst_at_its_middle():
    a, b = split_burst(np.arange(7))
    assert a.tolist() == [0, 1, 2] and b.tolist() == [3, 4, 5, 6]
    a, b = split_burst(np.arange(2))
    assert a.tolist() == [0] and b.tolist() == [1]


def test_epoch_pairs_are_a_function_of_seed_and_epoch():
    pairs = epoch_pairs(1000, seed=3, epoch=2)
    again = epoch_pairs(1000, seed=3, epoch=2)
    assert np.array_equal(pairs.first, again.first) and np.array_equal(pairs.second, again.second)
    assert not np.array_equal(pairs.first, epoch_pairs(1000, seed=3, epoch=3).first)
    assert sorted(pairs.first.tolist()) == list(range(1000))  # each burst once an epoch
    assert np.array_equal(pairs.second[~pairs.other], pairs.first[~pairs.other])  # same origin: its own B
    assert (pairs.second[pairs.other] != pairs.first[pairs.other]).all()  # other origin: never itself
    assert 400 < pairs.other.sum() < 600


def test_batches_pair_a_with_its_own_b_or_another_bursts_b(lab_tables, tokenizer, encoder):
    halves = corpus_halves(lab_tables["train"].slice(0, 60), encoder, TokenOptions())
    config = PretrainConfig(size="tiny", seq_length=512, batch_size=16)
    batches = BurstBatches(halves, tokenizer, config)
    seen = {True: 0, False: 0}
    for step in range(batches.per_epoch + 2):  # into the second epoch
        input_ids, token_types, attention, other = batches.batch(step)
        epoch, index = divmod(step, batches.per_epoch)
        pairs = epoch_pairs(len(halves), config.seed, epoch)
        for row, k in enumerate(range(index * 16, min(index * 16 + 16, len(halves)))):
            ids = input_ids[row][attention[row].bool()].numpy()
            types = token_types[row][attention[row].bool()].numpy()
            a, b = ids[types == 0], ids[types == 1]
            assert a[0] == tokenizer.cls_token_id and a[-1] == tokenizer.sep_token_id and b[-1] == tokenizer.sep_token_id
            own_a, own_b = halves[pairs.first[k]]
            assert np.array_equal(a[1:-1], own_a[:len(a) - 2])
            true_second_half = np.array_equal(b[:-1], own_b[:len(b) - 1])
            assert bool(other[row]) == bool(pairs.other[k])
            if other[row]:
                assert np.array_equal(b[:-1], halves[pairs.second[k]][1][:len(b) - 1])
                assert pairs.second[k] != pairs.first[k]
            else:
                assert true_second_half
            seen[bool(other[row])] += 1
    assert seen[True] > 10 and seen[False] > 10


def test_long_pairs_are_cut_to_the_sequence_length(tokenizer):
    halves = [(np.arange(5, 305), np.arange(5, 405)), (np.arange(5, 15), np.arange(5, 25))]
    batches = BurstBatches(halves, tokenizer, PretrainConfig(size="tiny", seq_length=64, batch_size=2))
    ids, types = batches.document(*halves[0])
    assert len(ids) == 64 and (types == 0).sum() == 2 + 30 and (types == 1).sum() == 1 + 31
    ids, types = batches.document(np.arange(5, 15), np.arange(5, 405))  # a short A leaves B the rest
    assert len(ids) == 64 and (types == 0).sum() == 12
