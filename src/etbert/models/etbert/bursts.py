"""BURSTs of flows and the sub-burst pairs of pre-training.

A BURST is a run of consecutive same-direction packets of a flow (among the flow's stored first K). Its
tokens are its packets' tokens one after the other (each packet capped at ``max_packet_bytes``; a bigram
never straddles two packets). A pre-training document is one burst cut at its middle token into two
sub-bursts, segment A and segment B; bursts too short to give both halves a token are skipped.

Same-origin BURST Prediction pairs each burst's A with its own B or, with probability 0.5, with the B of
another burst. The stand-in is always a second half, so where a sub-burst sits in its burst (a first half
starts with an IP header) cannot give the answer away. Order and pairs are a function of (seed, epoch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from etbert.models.etbert.tokens import BigramEncoder, TokenOptions, packet_view


def flow_bursts(directions: list[int], packets: list[bytes], payload_offsets: list[int], encoder: BigramEncoder,
                options: TokenOptions) -> list[np.ndarray]:
    """Token ids of each burst of one flow, in order."""
    bursts: list[list[np.ndarray]] = []
    for i, (data, offset) in enumerate(zip(packets, payload_offsets)):
        tokens = encoder.encode(packet_view(data, offset, options.payload_only)[:options.max_packet_bytes])
        if i == 0 or directions[i] != directions[i - 1]:
            bursts.append([])
        bursts[-1].append(tokens)
    return [np.concatenate(parts) for parts in bursts]


def split_burst(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Segments A and B: the burst's tokens cut at the middle."""
    half = len(tokens) // 2
    return tokens[:half], tokens[half:]


def corpus_halves(flows: pa.Table, encoder: BigramEncoder, options: TokenOptions) -> list[tuple[np.ndarray, np.ndarray]]:
    """(A, B) of every burst of the corpus with at least one token in each half."""
    halves = []
    for directions, packets, offsets in zip(flows.column("pkt_direction").to_pylist(),
                                            flows.column("pkt_bytes").to_pylist(),
                                            flows.column("pkt_payload_offset").to_pylist()):
        for burst in flow_bursts(directions, packets, offsets, encoder, options):
            if len(burst) >= 2:
                halves.append(split_burst(burst))
    return halves


@dataclass(frozen=True)
class EpochPairs:
    """Document k of an epoch: A of burst ``first[k]`` with B of burst ``second[k]``; ``other[k]`` when they differ."""

    first: np.ndarray
    second: np.ndarray
    other: np.ndarray


def epoch_pairs(bursts: int, seed: int, epoch: int) -> EpochPairs:
    """A shuffled pass over the bursts with each B, half the time, drawn from another burst."""
    if bursts < 2:
        raise ValueError("Same-origin BURST Prediction needs at least two bursts")
    rng = np.random.default_rng([seed, epoch])
    first = rng.permutation(bursts)
    other = rng.random(bursts) < 0.5
    stand_in = rng.integers(0, bursts - 1, bursts)
    stand_in += stand_in >= first  # any burst but its own
    return EpochPairs(first=first, second=np.where(other, stand_in, first), other=other)
