"""The seeded workload plan: every random choice a run makes, decided before any traffic flows.

Each class draws from its own generator seeded by ``(seed, class name)``, so the same seed gives the
same plan, and adding or removing a class never changes the flows planned for another. A class's flows
are then cut, in order, into contiguous shares: one capture file (one tcpdump session) per share.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CAPTURES_PER_CLASS = 5  # docs/lab.md says why five

# A flow's parameters: plain JSON values, written to the manifest as they were planned.
Params = dict[str, Any]
Sampler = Callable[[random.Random, float], Params]


@dataclass(frozen=True)
class FlowPlan:
    label: str
    index: int
    params: Params = field(hash=False)


@dataclass(frozen=True)
class AddressPlan:
    """Addresses of one run: the client-server link and the inner subnet tunnels use."""

    client: str
    server: str
    prefix_len: int
    tunnel_server: str  # the server's address inside VPN tunnels
    tunnel_prefix: str  # first three octets of the tunnel /24; clients take .2, .3, ...

    def tunnel_client(self, slot: int) -> str:
        return f"{self.tunnel_prefix}.{2 + slot % 250}"


@dataclass(frozen=True)
class LabPlan:
    seed: int
    size_scale: float
    addresses: AddressPlan
    flows: dict[str, list[FlowPlan]]
    captures_per_class: int

    def capture_shares(self, label: str) -> list[list[FlowPlan]]:
        return split_into_shares(self.flows[label], self.captures_per_class)


def class_rng(seed: int, label: str) -> random.Random:
    return random.Random(f"{seed}:{label}")


def plan_addresses(seed: int) -> AddressPlan:
    """A private /24 per run (distinct across seeds), so captures of different runs do not share addresses."""
    rng = class_rng(seed, "addresses")
    a, b = rng.randrange(16, 250), rng.randrange(0, 256)
    client, server = rng.sample(range(2, 255), 2)
    tunnel_a, tunnel_b = rng.randrange(16, 250), rng.randrange(0, 256)
    while (tunnel_a, tunnel_b) == (a, b):
        tunnel_b = (tunnel_b + 1) % 256
    return AddressPlan(
        client=f"10.{a}.{b}.{client}",
        server=f"10.{a}.{b}.{server}",
        prefix_len=24,
        tunnel_server=f"10.{tunnel_a}.{tunnel_b}.1",
        tunnel_prefix=f"10.{tunnel_a}.{tunnel_b}",
    )


def make_plan(
    samplers: Mapping[str, Sampler], flows_per_class: int, seed: int, size_scale: float = 1.0, captures_per_class: int = DEFAULT_CAPTURES_PER_CLASS
) -> LabPlan:
    """Plan ``flows_per_class`` flows for every class; ``samplers`` maps a class name to its parameter sampler."""
    if flows_per_class < 1:
        raise ValueError(f"flows per class must be at least 1, got {flows_per_class}")
    if size_scale <= 0:
        raise ValueError(f"size scale must be positive, got {size_scale}")
    if captures_per_class < 1:
        raise ValueError(f"captures per class must be at least 1, got {captures_per_class}")
    flows = {}
    for label, sample in samplers.items():
        rng = class_rng(seed, label)
        flows[label] = [FlowPlan(label, index, sample(rng, size_scale)) for index in range(flows_per_class)]
    return LabPlan(seed, size_scale, plan_addresses(seed), flows, captures_per_class)


def split_into_shares(flows: Sequence[FlowPlan], shares: int) -> list[list[FlowPlan]]:
    """``flows`` cut in order into ``shares`` contiguous runs whose sizes differ by at most one (earlier
    ones larger). Fewer flows than shares give one share per flow: a capture never holds no planned flow."""
    count = min(shares, len(flows))
    if count == 0:
        return []
    size, extra = divmod(len(flows), count)
    bounds = [i * size + min(i, extra) for i in range(count + 1)]
    return [list(flows[start:end]) for start, end in zip(bounds, bounds[1:])]


# Helpers the class samplers share.


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    """Sizes and times spread over orders of magnitude, as real ones are."""
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def size(rng: random.Random, low: int, high: int, scale: float, floor: int = 64) -> int:
    """A byte count drawn log-uniformly from [low, high] and multiplied by the run's size scale."""
    return max(floor, round(log_uniform(rng, low, high) * scale))


def sizes(rng: random.Random, count: int, low: int, high: int, scale: float) -> list[int]:
    return [size(rng, low, high, scale) for _ in range(count)]


def seconds(rng: random.Random, low: float, high: float) -> float:
    return round(log_uniform(rng, low, high), 3)


def pick(rng: random.Random, choices: Sequence[Any]) -> Any:
    return choices[rng.randrange(len(choices))]
