"""Proxy protocols carrying browsing and downloads: Shadowsocks (shadowsocks-libev) and V2Ray (VMess).

The proxy client runs as a daemon in the client namespace with a local SOCKS5 port; curl browses through
it to nginx in the server namespace. Only the proxy's own connections cross the captured link.
"""

from __future__ import annotations

import json
import random
import uuid

from etbert.lab.classes.base import LabClass, LabContext
from etbert.lab.classes.web import run_carried, sample_carried, start_nginx
from etbert.lab.plan import FlowPlan, Params, pick

SHADOWSOCKS_METHODS = ("chacha20-ietf-poly1305", "aes-256-gcm", "aes-128-gcm")
VMESS_SECURITY = ("aes-128-gcm", "chacha20-poly1305")
FIRST_SERVER_PORT, FIRST_SOCKS_PORT = 8388, 1080


class ProxyClass(LabClass):
    variants: tuple[str, ...] = ()  # one server/client pair per cipher, chosen per flow

    def sample(self, rng: random.Random, scale: float) -> Params:
        return {"variant": pick(rng, self.variants), **sample_carried(rng, scale)}

    def start(self, lab: LabContext) -> None:
        self.docroot = start_nginx(lab)
        for index, variant in enumerate(self.variants):
            self.start_pair(lab, variant, FIRST_SERVER_PORT + index, FIRST_SOCKS_PORT + index)

    def start_pair(self, lab: LabContext, variant: str, server_port: int, socks_port: int) -> None:
        raise NotImplementedError

    def run_flow(self, lab: LabContext, flow: FlowPlan) -> None:
        socks_port = FIRST_SOCKS_PORT + self.variants.index(flow.params["variant"])
        run_carried(lab, self.docroot, flow.params, proxy=f"127.0.0.1:{socks_port}")


class Shadowsocks(ProxyClass):
    name = "shadowsocks"
    description = "Shadowsocks (shadowsocks-libev AEAD ciphers) carrying web browsing and downloads"
    debian_packages = ("shadowsocks-libev", "nginx", "curl")
    binaries = ("ss-server", "ss-local", "nginx", "curl")
    variants = SHADOWSOCKS_METHODS

    def start_pair(self, lab: LabContext, variant: str, server_port: int, socks_port: int) -> None:
        password = f"lab-{uuid.uuid4().hex}"
        common = ["-s", lab.server, "-p", str(server_port), "-k", password, "-m", variant, "-t", "60"]
        lab.server_daemon(["ss-server", *common], f"ss-server-{variant}", port=server_port)
        lab.client_daemon(["ss-local", *common, "-b", "127.0.0.1", "-l", str(socks_port)], f"ss-local-{variant}", port=socks_port)


class V2Ray(ProxyClass):
    name = "v2ray"
    description = "V2Ray VMess (AEAD header, per-flow body cipher) carrying web browsing and downloads"
    debian_packages = ("v2ray", "nginx", "curl")
    binaries = ("v2ray", "nginx", "curl")
    variants = VMESS_SECURITY

    def start_pair(self, lab: LabContext, variant: str, server_port: int, socks_port: int) -> None:
        user = str(uuid.uuid4())
        log = {"loglevel": "warning"}  # no geoip/geosite rules: Debian's v2ray ships no geoip.dat
        server = {
            "log": log,
            "inbounds": [{"listen": lab.server, "port": server_port, "protocol": "vmess", "settings": {"clients": [{"id": user, "alterId": 0}]}}],
            "outbounds": [{"protocol": "freedom"}],
        }
        client = {
            "log": log,
            "inbounds": [{"listen": "127.0.0.1", "port": socks_port, "protocol": "socks", "settings": {"udp": False}}],
            "outbounds": [
                {
                    "protocol": "vmess",
                    "settings": {"vnext": [{"address": lab.server, "port": server_port, "users": [{"id": user, "alterId": 0, "security": variant}]}]},
                }
            ],
        }
        for role, config, port in (("server", server, server_port), ("client", client, socks_port)):
            path = lab.workdir / f"v2ray-{role}-{variant}.json"
            path.write_text(json.dumps(config, indent=1))
            start = lab.server_daemon if role == "server" else lab.client_daemon
            start(["v2ray", "-config", str(path)], f"v2ray-{role}-{variant}", port=port)
