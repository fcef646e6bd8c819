"""Daemons and clients inside a namespace: started by the lab, stopped by their PID.

Daemons run in the foreground in their own session (a Ctrl-C on the terminal reaches the lab, which then
stops them in order). A client that fails raises ``FlowError`` with the last line it printed, so one
broken flow is counted in the manifest instead of stopping the run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from etbert.lab.cleanup import Cleanup
from etbert.lab.netns import LabSetupError, in_namespace

STOP_GRACE_S = 3.0
CLOSE_TIMEOUT_S = 10.0  # V2Ray holds an upstream connection up to 5 s after its client's ends


class FlowError(RuntimeError):
    """One flow's client failed; the message is one line."""


@dataclass
class Daemon:
    name: str
    process: subprocess.Popen
    log: Path

    def log_tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines() if self.log.exists() else []
        return lines[-1] if lines else "no output"


def stop_process(process: subprocess.Popen, first_signal: int = signal.SIGTERM) -> None:
    """Signal the process group the lab started, wait, then SIGKILL what is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, first_signal)
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass
    try:  # children that outlived their group leader
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def start_daemon(cleanup: Cleanup, namespace: str, argv: list[str], name: str, log_dir: Path, env: dict[str, str] | None = None) -> Daemon:
    log = log_dir / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            in_namespace(namespace, argv),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=None if env is None else {**os.environ, **env},
            start_new_session=True,
        )
    cleanup.push(f"stop {name} (pid {process.pid})", lambda: stop_process(process))
    return Daemon(name, process, log)


def listening(namespace: str, port: int, transport: str) -> bool:
    flag = "-Hltn" if transport == "tcp" else "-Hlun"
    result = subprocess.run(in_namespace(namespace, ["ss", flag, f"sport = :{port}"]), capture_output=True, text=True)
    return bool(result.stdout.strip())


def wait_connections_closed(namespace: str, peer: str, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
    """Wait (at most ``timeout_s``) until no TCP connection from ``namespace`` to ``peer`` is open or closing;
    TIME_WAIT sends nothing more. Proxies close their upstream connections after their client's: a capture
    stopped before then would leave those FINs to the next one."""
    argv = in_namespace(namespace, ["ss", "-Htn", "state", "connected", "exclude", "time-wait", "dst", peer])
    deadline = time.monotonic() + timeout_s
    while subprocess.run(argv, capture_output=True, text=True).stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_listening(daemon: Daemon, namespace: str, port: int, transport: str = "tcp", timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not listening(namespace, port, transport):
        if daemon.process.poll() is not None:
            raise LabSetupError(f"{daemon.name} exited with {daemon.process.returncode}: {daemon.log_tail()}")
        if time.monotonic() > deadline:
            raise LabSetupError(f"{daemon.name} did not listen on {transport}/{port} within {timeout_s:.0f} s: {daemon.log_tail()}")
        time.sleep(0.02)


def run_client(
    namespace: str,
    argv: list[str],
    timeout_s: float = 60.0,
    env: dict[str, str] | None = None,
    stdin: bytes | None = None,
) -> bytes:
    """Run one client to completion inside ``namespace``; returns its stdout, raises ``FlowError`` on failure."""
    process = subprocess.Popen(
        in_namespace(namespace, argv),
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=None if env is None else {**os.environ, **env},
        start_new_session=True,
    )
    try:
        out, err = process.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        stop_process(process, signal.SIGKILL)
        raise FlowError(f"{argv[0]} timed out after {timeout_s:.0f} s") from None
    except BaseException:
        stop_process(process, signal.SIGKILL)
        raise
    if process.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise FlowError(f"{argv[0]} exited with {process.returncode}: {lines[-1] if lines else 'no message'}")
    return out


def run_typed_client(namespace: str, argv: list[str], keystrokes: list[tuple[str, float]], timeout_s: float = 60.0) -> None:
    """Run an interactive client, typing each ``(text, pause_s)`` into its stdin like a person would."""
    process = subprocess.Popen(
        in_namespace(namespace, argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        for text, pause_s in keystrokes:
            process.stdin.write(text.encode())
            process.stdin.flush()
            time.sleep(pause_s)
        process.stdin.close()
        err = process.stderr.read() if process.wait(timeout_s) != 0 else b""
    except (BrokenPipeError, subprocess.TimeoutExpired) as error:
        stop_process(process, signal.SIGKILL)
        raise FlowError(f"{argv[0]} interactive session failed: {type(error).__name__}") from None
    except BaseException:
        stop_process(process, signal.SIGKILL)
        raise
    if process.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        raise FlowError(f"{argv[0]} exited with {process.returncode}: {lines[-1] if lines else 'no message'}")
