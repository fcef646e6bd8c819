"""Timing shared by the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable


def timed_calls(call: Callable[[], object], repeat: int, warmups: int = 2) -> list[float]:
    """Seconds of each of ``repeat`` calls, after ``warmups`` untimed calls (imports, compiling, caches)."""
    for _ in range(warmups):
        call()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds
