"""Network namespaces joined by a veth pair that behaves like a real Ethernet link.

Client and server each get a namespace with one ``eth0`` (MTU 1500) and a loopback; segmentation and
checksum offloads are off on all of them, so tcpdump sees wire-sized frames instead of 64 KB
super-packets. Neither namespace has a route anywhere else: lab traffic cannot leave the lab.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from shutil import which

from etbert.lab.cleanup import Cleanup
from etbert.lab.plan import AddressPlan

LINK_DEVICE = "eth0"
MTU = 1500
OFFLOADS_OFF = ["tso", "off", "gso", "off", "gro", "off", "sg", "off", "tx", "off", "rx", "off"]


class LabSetupError(RuntimeError):
    """The host cannot provide what the lab needs (root, namespaces, a tool); the message says which."""


@dataclass(frozen=True)
class Topology:
    run_id: str  # makes names unique on the host: namespaces, and tunnel devices whose control sockets are shared
    client_ns: str
    server_ns: str
    addresses: AddressPlan
    device: str = LINK_DEVICE


def in_namespace(namespace: str, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", namespace, *argv]


def run_checked(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise LabSetupError(f"{what} failed: {detail[-1] if detail else f'exit {result.returncode}'} ({' '.join(argv)})")


def add_namespace(cleanup: Cleanup, name: str) -> None:
    run_checked(["ip", "netns", "add", name], f"creating network namespace {name}")
    cleanup.push(f"delete namespace {name}", lambda: delete_namespace(name))


def delete_namespace(name: str) -> None:
    """Kill whatever still runs in the namespace (only lab processes can), then delete it."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    run_checked(["ip", "netns", "delete", name], f"deleting network namespace {name}")


def disable_offloads(namespace: str, device: str) -> None:
    run_checked(in_namespace(namespace, ["ethtool", "-K", device, *OFFLOADS_OFF]), f"disabling offloads on {namespace}/{device}")


def configure_side(namespace: str, address: str, prefix_len: int) -> None:
    steps = [
        (["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"], "disabling IPv6"),  # no RS/MLD chatter in captures
        (["ip", "link", "set", "lo", "up"], "bringing up lo"),
        (["ip", "link", "set", LINK_DEVICE, "mtu", str(MTU), "up"], f"bringing up {LINK_DEVICE}"),
        (["ip", "addr", "add", f"{address}/{prefix_len}", "dev", LINK_DEVICE], f"addressing {LINK_DEVICE}"),
    ]
    for argv, what in steps:
        run_checked(in_namespace(namespace, argv), f"{namespace}: {what}")
    for device in ("lo", LINK_DEVICE):
        disable_offloads(namespace, device)


def apply_netem(namespace: str, device: str, netem: str) -> None:
    """``netem`` is tc-netem syntax, e.g. ``"delay 20ms 5ms loss 0.5%"``; applied on egress of each side."""
    run_checked(in_namespace(namespace, ["tc", "qdisc", "add", "dev", device, "root", "netem", *netem.split()]), f"netem '{netem}' on {namespace}/{device}")


def create_topology(cleanup: Cleanup, run_id: str, addresses: AddressPlan, netem: str | None = None) -> Topology:
    topology = Topology(run_id=run_id, client_ns=f"etb{run_id}c", server_ns=f"etb{run_id}s", addresses=addresses)
    add_namespace(cleanup, topology.client_ns)
    add_namespace(cleanup, topology.server_ns)
    # Created straight inside the namespaces: nothing of the lab appears in the host's own namespace.
    run_checked(
        ["ip", "link", "add", LINK_DEVICE, "netns", topology.client_ns, "type", "veth", "peer", "name", LINK_DEVICE, "netns", topology.server_ns],
        "creating the veth pair",
    )
    configure_side(topology.client_ns, addresses.client, addresses.prefix_len)
    configure_side(topology.server_ns, addresses.server, addresses.prefix_len)
    if netem:
        for namespace in (topology.client_ns, topology.server_ns):
            apply_netem(namespace, LINK_DEVICE, netem)
    return topology


def netem_unavailable(cleanup: Cleanup, run_id: str) -> str | None:
    """Why tc-netem cannot be used here (the kernel lacks sch_netem), or None."""
    probe = f"etb{run_id}p"
    add_namespace(cleanup, probe)
    result = subprocess.run(in_namespace(probe, ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]), capture_output=True, text=True)
    if result.returncode != 0:
        return f"tc netem unavailable on this kernel ({result.stderr.strip() or 'exit ' + str(result.returncode)})"
    return None


def host_unavailable() -> str | None:
    """Why this host cannot run the lab at all, or None."""
    if os.geteuid() != 0:
        return "the lab needs root: it creates network namespaces and veth pairs and runs tcpdump (run it with sudo)"
    missing = [tool for tool in ("ip", "ethtool", "tcpdump", "tc", "sysctl") if which(tool) is None]
    if missing:
        return f"missing tools: {', '.join(missing)} (install them with scripts/install-lab-deps.sh)"
    if not Path("/proc/self/ns/net").exists():
        return "this kernel has no network namespaces"
    return None
