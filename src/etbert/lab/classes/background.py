"""Background: unencrypted traffic a capture also holds (plain HTTP and DNS)."""

from __future__ import annotations

import random
import time

from etbert.lab.classes.base import LabClass, LabContext
from etbert.lab.classes.web import HOSTS, curl, object_path, page_paths, run_curl, sample_page, start_nginx
from etbert.lab.pki import DOMAIN
from etbert.lab.plan import FlowPlan, Params, pick, seconds, size
from etbert.lab.processes import run_client

DNS_PORT = 53
QUERY_TYPES = ("A", "A", "A", "AAAA", "MX", "TXT", "NS")
NAMES = ("mail", "news", "shop", "video", "maps", "docs", "chat", "wiki", "git", "drive", "weather", "music", *HOSTS)
TLDS = ("example.com", "example.net", "example.org", DOMAIN)


class Background(LabClass):
    name = "background"
    description = "Unencrypted background: plain HTTP page loads and API calls, DNS lookups"
    debian_packages = ("nginx", "curl", "dnsmasq-base", "bind9-dnsutils")
    binaries = ("nginx", "curl", "dnsmasq", "dig")

    def sample(self, rng: random.Random, scale: float) -> Params:
        kind = pick(rng, ("http-page", "http-api", "dns", "dns"))
        params: Params = {"kind": kind, "host": f"{pick(rng, HOSTS)}.{DOMAIN}"}
        if kind == "http-page":
            params.update(sample_page(rng, scale))
        elif kind == "http-api":
            params.update({"responses": [size(rng, 80, 4000, 1.0) for _ in range(rng.randint(2, 12))], "think_s": seconds(rng, 0.02, 0.3)})
        else:
            count = rng.randint(1, 6)
            params.update({
                "names": [f"{pick(rng, NAMES)}{rng.randint(0, 99)}.{pick(rng, TLDS)}" for _ in range(count)],
                "types": [pick(rng, QUERY_TYPES) for _ in range(count)],
                "think_s": seconds(rng, 0.01, 0.2),
            })  # fmt: skip
        return params

    def start(self, lab: LabContext) -> None:
        self.docroot = start_nginx(lab)
        dnsmasq = [
            "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--user=root", "--pid-file",
            f"--listen-address={lab.server}", "--bind-interfaces", f"--port={DNS_PORT}",
            f"--address=/#/{lab.server}", "--mx-host=example.com,mail.example.com,10", "--txt-record=example.com,v=spf1 -all",
        ]  # fmt: skip
        lab.server_daemon(dnsmasq, "dnsmasq", port=DNS_PORT, transport="udp")

    def run_flow(self, lab: LabContext, flow: FlowPlan) -> None:
        p = flow.params
        if p["kind"] == "http-page":
            run_curl(lab, curl(lab, p["host"], page_paths(self.docroot, p), parallel=p["parallel"]))
        elif p["kind"] == "http-api":
            run_curl(lab, curl(lab, p["host"], [object_path(self.docroot, n, ".json") for n in p["responses"]], think_s=p["think_s"]))
        else:  # each lookup its own UDP flow, as a stub resolver makes them
            for name, query_type in zip(p["names"], p["types"]):
                run_client(lab.topology.client_ns, ["dig", f"@{lab.server}", "+tries=1", "+time=2", name, query_type])
                time.sleep(p["think_s"])
