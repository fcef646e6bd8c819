"""Guaranteed cleanup: an undo registry and signal handling that turns SIGTERM/SIGHUP into an exception.

Everything the lab creates (namespace, process, temp folder) registers its undo step the moment it
exists, so an exception, Ctrl-C or SIGTERM at any point unwinds exactly what was made, newest first.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


class LabInterrupted(Exception):
    """Raised in the main thread when the lab receives SIGTERM or SIGHUP."""


@dataclass
class UndoFailure:
    step: str
    error: str


@dataclass
class Cleanup:
    """LIFO registry of undo steps. ``close`` runs every step even when some fail, and reports failures."""

    steps: list[tuple[str, Callable[[], object]]] = field(default_factory=list)
    failures: list[UndoFailure] = field(default_factory=list)

    def push(self, description: str, undo: Callable[[], object]) -> None:
        self.steps.append((description, undo))

    def close(self) -> list[UndoFailure]:
        """Run and forget every registered step, newest first; returns the steps that failed."""
        failed: list[UndoFailure] = []
        while self.steps:
            description, undo = self.steps.pop()
            try:
                undo()
            except BaseException as error:  # an undo step must never stop the ones after it
                failed.append(UndoFailure(description, f"{type(error).__name__}: {error}"))
        self.failures.extend(failed)
        return failed

    def __enter__(self) -> Cleanup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        with signals_deferred():
            self.close()


def _raise_interrupted(signum: int, _frame: object) -> None:
    raise LabInterrupted(f"received {signal.Signals(signum).name}")


@contextmanager
def signals_raise() -> Iterator[None]:
    """Inside the block SIGTERM and SIGHUP raise ``LabInterrupted`` and SIGINT raises KeyboardInterrupt.

    SIGINT is set explicitly: a shell starts background jobs with it ignored, and Python then never raises.
    """
    previous = {sig: signal.signal(sig, _raise_interrupted) for sig in (signal.SIGTERM, signal.SIGHUP)}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP while cleaning up so a second Ctrl-C cannot leave half the lab behind."""
    signals = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
