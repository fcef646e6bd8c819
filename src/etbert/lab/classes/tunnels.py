"""VPN tunnels carrying web traffic: WireGuard (userspace wireguard-go) and OpenVPN (TUN in each namespace).

Each flow is one VPN session: the client tunnel comes up, carries browsing or downloads to nginx at the
server's tunnel address, and goes down. Sessions run one at a time because they share the tunnel route.
"""

from __future__ import annotations

import random
import subprocess
import time
from pathlib import Path

from etbert.lab.classes.base import LabClass, LabContext
from etbert.lab.classes.web import run_carried, sample_carried, start_nginx
from etbert.lab.cleanup import Cleanup
from etbert.lab.netns import LabSetupError
from etbert.lab.pki import certificate_authority, issue
from etbert.lab.plan import FlowPlan, Params, pick
from etbert.lab.processes import Daemon, FlowError, run_client, start_daemon

WIREGUARD_PORT, OPENVPN_PORT = 51820, 1194
WIREGUARD_SOCKETS = Path("/var/run/wireguard")  # one directory for every namespace: device names must differ
OPENVPN_CIPHERS = ("AES-256-GCM", "AES-128-GCM", "CHACHA20-POLY1305")
SESSION_TIMEOUT_S = 20.0


def tun_unavailable() -> str | None:
    return None if Path("/dev/net/tun").exists() else "no /dev/net/tun on this machine (TUN devices unsupported)"


def wait_for(condition, daemon: Daemon, what: str, error: type[Exception]) -> None:
    deadline = time.monotonic() + SESSION_TIMEOUT_S
    while not condition():
        if daemon.process.poll() is not None or time.monotonic() > deadline:
            raise error(f"{daemon.name}: {what} did not happen: {daemon.log_tail()}")
        time.sleep(0.02)


def wg_key_pair(directory: Path, name: str) -> tuple[Path, str]:
    private = directory / f"{name}.key"
    private.write_text(subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout)
    public = subprocess.run(["wg", "pubkey"], input=private.read_text(), capture_output=True, text=True, check=True).stdout.strip()
    return private, public


class TunnelClass(LabClass):
    max_parallel = 1

    def unavailable(self) -> str | None:
        return tun_unavailable() or super().unavailable()

    def sample(self, rng: random.Random, scale: float) -> Params:
        return {**self.sample_session(rng), **sample_carried(rng, scale)}

    def sample_session(self, rng: random.Random) -> Params:
        raise NotImplementedError

    def run_flow(self, lab: LabContext, flow: FlowPlan) -> None:
        with Cleanup() as session:
            self.open_session(lab, flow, session)
            run_carried(lab, self.docroot, flow.params, address=lab.topology.addresses.tunnel_server)

    def open_session(self, lab: LabContext, flow: FlowPlan, session: Cleanup) -> None:
        raise NotImplementedError


class WireGuard(TunnelClass):
    name = "wireguard"
    description = "WireGuard (wireguard-go, one session per flow with its own key and port) carrying web traffic"
    debian_packages = ("wireguard-go", "wireguard-tools", "nginx", "curl")
    binaries = ("wireguard-go", "wg", "nginx", "curl")

    def sample_session(self, rng: random.Random) -> Params:
        return {"client_port": rng.randrange(20000, 60000)}

    def start(self, lab: LabContext) -> None:
        self.server_device = f"wgs{lab.topology.run_id}"
        daemon = start_daemon(lab.cleanup, lab.topology.server_ns, ["wireguard-go", "-f", self.server_device], self.server_device, lab.workdir)
        wait_for((WIREGUARD_SOCKETS / f"{self.server_device}.sock").exists, daemon, "control socket", LabSetupError)
        key, self.server_public = wg_key_pair(lab.workdir, "server")
        addresses = lab.topology.addresses
        for argv in (
            ["wg", "set", self.server_device, "listen-port", str(WIREGUARD_PORT), "private-key", str(key)],
            ["ip", "addr", "add", f"{addresses.tunnel_server}/24", "dev", self.server_device],
            ["ip", "link", "set", self.server_device, "up"],
        ):
            run_client(lab.topology.server_ns, argv)
        self.docroot = start_nginx(lab)

    def open_session(self, lab: LabContext, flow: FlowPlan, session: Cleanup) -> None:
        addresses, topology = lab.topology.addresses, lab.topology
        device = f"wgc{topology.run_id}n{flow.index}"
        client_address = addresses.tunnel_client(flow.index)
        key, public = wg_key_pair(lab.workdir, device)
        run_client(topology.server_ns, ["wg", "set", self.server_device, "peer", public, "allowed-ips", f"{client_address}/32"])
        session.push(f"remove peer {device}", lambda: run_client(topology.server_ns, ["wg", "set", self.server_device, "peer", public, "remove"]))
        daemon = start_daemon(session, topology.client_ns, ["wireguard-go", "-f", device], device, lab.workdir)
        wait_for((WIREGUARD_SOCKETS / f"{device}.sock").exists, daemon, "control socket", FlowError)
        peer = ["peer", self.server_public, "endpoint", f"{lab.server}:{WIREGUARD_PORT}", "allowed-ips", f"{addresses.tunnel_prefix}.0/24"]
        for argv in (
            ["wg", "set", device, "private-key", str(key), "listen-port", str(flow.params["client_port"]), *peer],
            ["ip", "addr", "add", f"{client_address}/24", "dev", device],
            ["ip", "link", "set", device, "up"],
        ):
            run_client(topology.client_ns, argv)


class OpenVpn(TunnelClass):
    name = "openvpn"
    description = "OpenVPN (UDP, TLS control channel, per-flow data cipher), one session per flow, carrying web traffic"
    debian_packages = ("openvpn", "openssl", "nginx", "curl")
    binaries = ("openvpn", "openssl", "nginx", "curl")

    def sample_session(self, rng: random.Random) -> Params:
        return {"data_cipher": pick(rng, OPENVPN_CIPHERS)}

    def start(self, lab: LabContext) -> None:
        pki = lab.workdir / "pki"
        pki.mkdir()
        self.authority = certificate_authority(pki)
        server = issue(pki, self.authority, "vpn-server", "serverAuth")
        self.client = issue(pki, self.authority, "vpn-client", "clientAuth")
        addresses = lab.topology.addresses
        argv = [
            "openvpn", "--dev", f"ovs{lab.topology.run_id}", "--dev-type", "tun", "--proto", "udp", "--local", lab.server, "--port", str(OPENVPN_PORT),
            "--server", f"{addresses.tunnel_prefix}.0", "255.255.255.0", "--topology", "subnet", "--duplicate-cn", "--keepalive", "10", "60",
            "--ca", str(self.authority.cert), "--cert", str(server.cert), "--key", str(server.key), "--dh", "none",
            "--data-ciphers", ":".join(OPENVPN_CIPHERS), "--verb", "3",
        ]  # fmt: skip
        daemon = lab.server_daemon(argv, "openvpn-server", port=OPENVPN_PORT, transport="udp")
        wait_for(lambda: "Initialization Sequence Completed" in daemon.log.read_text(errors="replace"), daemon, "start", LabSetupError)
        self.docroot = start_nginx(lab)

    def open_session(self, lab: LabContext, flow: FlowPlan, session: Cleanup) -> None:
        device = f"ovc{lab.topology.run_id}n{flow.index}"
        argv = [
            "openvpn", "--client", "--dev", device, "--dev-type", "tun", "--proto", "udp", "--remote", lab.server, str(OPENVPN_PORT), "--nobind",
            "--ca", str(self.authority.cert), "--cert", str(self.client.cert), "--key", str(self.client.key), "--remote-cert-tls", "server",
            "--data-ciphers", flow.params["data_cipher"], "--explicit-exit-notify", "1", "--connect-retry-max", "1", "--verb", "3",
        ]  # fmt: skip
        daemon = start_daemon(session, lab.topology.client_ns, argv, device, lab.workdir)
        wait_for(lambda: "Initialization Sequence Completed" in daemon.log.read_text(errors="replace"), daemon, "tunnel set-up", FlowError)
