"""What every traffic class provides, and the context the lab hands it.

A class is a behaviour, not only a handshake: its sampler plans sizes, counts and think times per flow;
``start`` brings up its servers (and long-lived client daemons) in the namespaces, registering each
stop on the class's cleanup scope; ``run_flow`` drives one planned flow with real client software.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from etbert.lab.cleanup import Cleanup
from etbert.lab.netns import Topology
from etbert.lab.plan import FlowPlan, Params
from etbert.lab.processes import Daemon, start_daemon, wait_listening


@dataclass
class LabContext:
    """One class's run: where its namespaces, scratch files and outputs are."""

    topology: Topology
    workdir: Path  # scratch, removed with the run
    keylog: Path  # TLS/QUIC session secrets written by clients (SSLKEYLOGFILE format)
    cleanup: Cleanup  # the class scope: everything started here stops when the class ends (after all its captures)

    @property
    def server(self) -> str:
        return self.topology.addresses.server

    @property
    def client(self) -> str:
        return self.topology.addresses.client

    def server_daemon(self, argv: list[str], name: str, port: int | None = None, transport: str = "tcp", env: dict[str, str] | None = None) -> Daemon:
        return self._daemon(self.topology.server_ns, argv, name, port, transport, env)

    def client_daemon(self, argv: list[str], name: str, port: int | None = None, transport: str = "tcp", env: dict[str, str] | None = None) -> Daemon:
        return self._daemon(self.topology.client_ns, argv, name, port, transport, env)

    def _daemon(self, namespace: str, argv: list[str], name: str, port: int | None, transport: str, env: dict[str, str] | None) -> Daemon:
        daemon = start_daemon(self.cleanup, namespace, argv, name, self.workdir, env)
        if port is not None:
            wait_listening(daemon, namespace, port, transport)
        return daemon


class LabClass:
    """Base of every traffic class; subclasses set the attributes and override the three methods."""

    name: str = ""
    description: str = ""
    debian_packages: tuple[str, ...] = ()  # their versions go to the manifest
    python_packages: tuple[str, ...] = ()
    binaries: tuple[str, ...] = ()  # what must be on PATH for the class to run
    max_parallel: int = 8  # flows run at once; tunnels that share routes need 1

    def unavailable(self) -> str | None:
        """Why this class cannot run on this machine, or None."""
        missing = [binary for binary in self.binaries if shutil.which(binary) is None]
        if missing:
            return f"missing {', '.join(missing)} (scripts/install-lab-deps.sh installs it)"
        for package in self.python_packages:
            try:
                metadata.version(package)
            except metadata.PackageNotFoundError:
                return f"missing Python package {package} (pip install {package})"
        return None

    def sample(self, rng: random.Random, scale: float) -> Params:
        raise NotImplementedError

    def start(self, lab: LabContext) -> None:
        raise NotImplementedError

    def run_flow(self, lab: LabContext, flow: FlowPlan) -> None:
        raise NotImplementedError

    def software(self) -> dict[str, str]:
        versions = {package: debian_version(package) for package in self.debian_packages}
        versions.update({package: metadata.version(package) for package in self.python_packages})
        return versions


def debian_version(package: str) -> str:
    result = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"
