"""QUIC / HTTP/3 (aioquic server and client written for the lab): page loads, downloads and API calls."""

from __future__ import annotations

import json
import random
import sys

from etbert.lab.classes.base import LabClass, LabContext
from etbert.lab.classes.web import HOSTS
from etbert.lab.pki import DOMAIN, self_signed
from etbert.lab.plan import FlowPlan, Params, pick, seconds, size, sizes
from etbert.lab.processes import run_client

PORT = 443
CIPHERS = ("AES_128_GCM_SHA256", "AES_256_GCM_SHA384", "CHACHA20_POLY1305_SHA256")


class Quic(LabClass):
    name = "quic"
    description = "QUIC / HTTP/3 (aioquic): page loads with parallel streams, downloads, API calls with uploads"
    python_packages = ("aioquic",)
    binaries = ("openssl",)

    def sample(self, rng: random.Random, scale: float) -> Params:
        workload = pick(rng, ("page", "download", "api"))
        if workload == "page":
            requests = [[n, 0] for n in sizes(rng, rng.randint(6, 30), 500, 150_000, scale)]
        elif workload == "download":
            requests = [[n, 0] for n in sizes(rng, rng.randint(1, 2), 300_000, 8_000_000, scale)]
        else:
            requests = [[size(rng, 80, 4000, 1.0), size(rng, 60, 1500, 1.0) if rng.random() < 0.25 else 0] for _ in range(rng.randint(3, 20))]
        return {
            "workload": workload,
            "host": f"{pick(rng, HOSTS)}.{DOMAIN}",
            "cipher": pick(rng, CIPHERS),
            "requests": requests,
            "parallel": workload == "page",
            "think_s": seconds(rng, 0.02, 0.3) if workload == "api" else 0,
        }

    def start(self, lab: LabContext) -> None:
        certificate = self_signed(lab.workdir / "pki", "ecdsa")
        server = [sys.executable, "-m", "etbert.lab.h3", "server", "--host", lab.server, "--port", str(PORT), "--cert", str(certificate.cert), "--key", str(certificate.key)]
        lab.server_daemon(server, "h3-server", port=PORT, transport="udp")

    def run_flow(self, lab: LabContext, flow: FlowPlan) -> None:
        p = flow.params
        plan = json.dumps({key: p[key] for key in ("cipher", "requests", "parallel", "think_s")})
        argv = [sys.executable, "-m", "etbert.lab.h3", "client", "--server", lab.server, "--port", str(PORT), "--host", p["host"], "--plan", plan, "--keylog", str(lab.keylog)]
        run_client(lab.topology.client_ns, argv, timeout_s=120)
