"""Web traffic: nginx serves, curl fetches. TLS classes differ by behaviour, not by handshake.

Every TLS flow draws its own protocol version, cipher suite, key-exchange group, ALPN and server name
from pools shared by all TLS classes, so a classifier can only separate the classes by what the
connection does (request counts, sizes, think times, direction), which is what the labels mean.
"""

from __future__ import annotations

import random
from pathlib import Path

from etbert.lab.classes.base import LabClass, LabContext
from etbert.lab.pki import DOMAIN, self_signed
from etbert.lab.plan import FlowPlan, Params, pick, seconds, size, sizes
from etbert.lab.processes import run_client

HTTP_PORT, HTTPS_PORT = 80, 443
HOSTS = ("www", "api", "cdn", "static", "media", "app", "img", "login")
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
)
TLS13_CIPHERS = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
GROUPS = ("X25519", "P-256", "P-384")
ALPNS = ("h2", "http/1.1")
TEXT_SUFFIXES = {".html", ".css", ".js", ".json"}
WORDS = "the of and to in is for on with as by at from this that data user item page value name list time".split()

NGINX_CONFIG = """\
daemon off;
master_process on;
worker_processes 1;
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    types {{ text/html html; text/css css; application/javascript js; application/json json; application/octet-stream bin; }}
    default_type application/octet-stream;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    keepalive_requests 100000;
    server {{
        listen {http_port};  # every address of the server namespace, tunnel ends included
        listen {https_port} ssl http2;
        server_name .{domain};
        ssl_certificate {rsa.cert};
        ssl_certificate_key {rsa.key};
        ssl_certificate {ecdsa.cert};
        ssl_certificate_key {ecdsa.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers {ciphers};
        ssl_ecdh_curve X25519:prime256v1:secp384r1;
        root {docroot};
        location /upload/ {{
            client_max_body_size 1g;
            dav_methods PUT;
            create_full_put_path on;
        }}
    }}
}}
"""


# Content: files created on demand with deterministic bytes (random for binary, word soup for text).


def object_path(docroot: Path, size_bytes: int, suffix: str = ".bin") -> str:
    """URL path of an object of exactly ``size_bytes`` bytes, creating it in ``docroot`` if needed."""
    name = f"o/{size_bytes}{suffix}"
    path = docroot / name
    if not path.exists():
        rng = random.Random(f"{size_bytes}{suffix}")
        if suffix in TEXT_SUFFIXES:
            text = " ".join(rng.choice(WORDS) for _ in range(size_bytes // 3 + 1)).encode()
            body = text[:size_bytes]
        else:
            body = rng.randbytes(size_bytes)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{id(body)}")
        partial.write_bytes(body)
        partial.replace(path)  # atomic: parallel flows may create the same object
    return "/" + name


def start_nginx(lab: LabContext) -> Path:
    """nginx in the server namespace, HTTP and HTTPS (dual RSA/ECDSA certificates); returns its docroot."""
    docroot = lab.workdir / "www"
    docroot.mkdir(parents=True, exist_ok=True)
    config = lab.workdir / "nginx.conf"
    config.write_text(
        NGINX_CONFIG.format(
            work=lab.workdir,
            http_port=HTTP_PORT,
            https_port=HTTPS_PORT,
            domain=DOMAIN,
            rsa=self_signed(lab.workdir / "pki", "rsa"),
            ecdsa=self_signed(lab.workdir / "pki", "ecdsa"),
            ciphers=":".join(TLS12_CIPHERS),
            docroot=docroot,
        )
    )
    lab.server_daemon(["nginx", "-c", str(config), "-e", str(lab.workdir / "nginx-error.log")], "nginx", port=HTTPS_PORT)
    return docroot


# What a curl invocation looks like for one flow.


def sample_tls(rng: random.Random) -> Params:
    version = pick(rng, ("1.2", "1.3"))
    return {
        "host": f"{pick(rng, HOSTS)}.{DOMAIN}",
        "tls_version": version,
        "cipher": pick(rng, TLS12_CIPHERS if version == "1.2" else TLS13_CIPHERS),
        "group": pick(rng, GROUPS),
        "alpn": pick(rng, ALPNS),
    }


def tls_options(params: Params) -> list[str]:
    if params["tls_version"] == "1.2":
        version = ["--tlsv1.2", "--tls-max", "1.2", "--ciphers", params["cipher"]]
    else:
        version = ["--tlsv1.3", "--tls13-ciphers", params["cipher"]]
    protocol = "--http2" if params["alpn"] == "h2" else "--http1.1"
    # P-256 stays offered: a TLS 1.2 ECDSA certificate needs its curve among the client's groups
    groups = params["group"] if params["group"] == "P-256" else f"{params['group']}:P-256"
    return ["-k", *version, "--curves", groups, protocol]


def curl(
    lab: LabContext,
    host: str,
    paths: list[str],
    *,
    tls: Params | None = None,
    think_s: float | None = None,
    parallel: int = 0,
    uploads: list[Path | None] | None = None,
    proxy: str | None = None,
    address: str | None = None,
) -> list[str]:
    """One curl process: one connection reused for every path (or up to ``parallel`` at once).

    ``think_s`` paces serial requests like a user or a player would (curl --rate); ``uploads[i]``, when
    set, is PUT to ``paths[i]``. ``proxy`` is a SOCKS5 address in the client namespace; ``address`` is
    where ``host`` resolves (the server's link address unless a tunnel carries the traffic).
    """
    scheme, port = ("https", HTTPS_PORT) if tls else ("http", HTTP_PORT)
    options = ["-sS", "--fail", "--max-time", "120", "--resolve", f"{host}:{port}:{address or lab.server}"]
    options += tls_options(tls) if tls else []
    options += ["--socks5", proxy] if proxy else []
    argv = ["curl", "--no-progress-meter"]
    if think_s:
        argv += ["--rate", f"{max(1, round(3600 / think_s))}/h"]
    if parallel:
        argv += ["--parallel", "--parallel-max", str(parallel)]
    # --next starts a new option set per request; identical options keep the one connection reused
    for index, path in enumerate(paths):
        upload = uploads[index] if uploads else None
        argv += [*(["--next"] if index else []), *options, *(["-T", str(upload)] if upload else []), "-o", "/dev/null", f"{scheme}://{host}{path}"]
    return argv


def upload_file(docroot: Path, size_bytes: int, suffix: str = ".bin") -> Path:
    """A local file of ``size_bytes`` for a client to send (taken from the content store)."""
    return docroot / object_path(docroot, size_bytes, suffix).lstrip("/")


def run_curl(lab: LabContext, argv: list[str]) -> None:
    run_client(lab.topology.client_ns, argv, timeout_s=180, env={"SSLKEYLOGFILE": str(lab.keylog)})


# Workloads the TLS classes share with the proxy classes (which carry the same browsing and downloads).


def sample_page(rng: random.Random, scale: float) -> Params:
    count = rng.randint(6, 40)
    return {
        "html": size(rng, 8_000, 80_000, scale),
        "objects": sizes(rng, count, 500, 150_000, scale),
        "kinds": [pick(rng, (".css", ".js", ".bin", ".bin")) for _ in range(count)],
        "parallel": rng.randint(2, 6),
    }


def page_paths(docroot: Path, params: Params) -> list[str]:
    paths = [object_path(docroot, params["html"], ".html")]
    return paths + [object_path(docroot, n, kind) for n, kind in zip(params["objects"], params["kinds"])]


def sample_download(rng: random.Random, scale: float) -> Params:
    return {"files": sizes(rng, rng.randint(1, 3), 300_000, 8_000_000, scale)}


def sample_carried(rng: random.Random, scale: float) -> Params:
    """Web use as a proxy or VPN carries it: browsing most often, sometimes downloads, mostly over HTTPS."""
    workload = pick(rng, ("browse", "browse", "download"))
    params: Params = {"workload": workload, "inner_tls": rng.random() < 0.7, **sample_tls(rng)}
    params.update(sample_page(rng, scale) if workload == "browse" else sample_download(rng, scale))
    return params


def run_carried(lab: LabContext, docroot: Path, params: Params, proxy: str | None = None, address: str | None = None) -> None:
    tls = params if params["inner_tls"] else None
    if params["workload"] == "browse":
        paths, parallel = page_paths(docroot, params), params["parallel"]
    else:
        paths, parallel = [object_path(docroot, n) for n in params["files"]], 0
    run_curl(lab, curl(lab, params["host"], paths, tls=tls, parallel=parallel, proxy=proxy, address=address))


# The TLS classes.


class TlsClass(LabClass):
    debian_packages = ("nginx", "curl", "openssl")
    binaries = ("nginx", "curl", "openssl")

    def start(self, lab: LabContext) -> None:
        self.docroot = start_nginx(lab)

    def sample(self, rng: random.Random, scale: float) -> Params:
        return {**sample_tls(rng), **self.sample_workload(rng, scale)}

    def sample_workload(self, rng: random.Random, scale: float) -> Params:
        raise NotImplementedError


class TlsApi(TlsClass):
    name = "tls-api"
    description = "HTTPS API client: many small JSON requests and small uploads on one connection, with think times"

    def sample_workload(self, rng: random.Random, scale: float) -> Params:
        count = rng.randint(3, 25)
        return {
            "responses": sizes(rng, count, 80, 4000, 1.0),  # API payloads stay small whatever the scale
            "posts": [rng.random() < 0.25 for _ in range(count)],
            "post_size": size(rng, 60, 1500, 1.0),
            "think_s": seconds(rng, 0.02, 0.3),
        }

    def run_flow(self, lab: LabContext, flow: FlowPlan) -> None:
        p = flow.params
        paths: list[str] = []
        uploads: list[Path | None] = []
        for index, (response, post) in enumerate(zip(p["responses"], p["posts"])):
            if post:  # PUT a small JSON body instead of a GET
                paths.append(f"/upload/api-{flow.index}-{index}.json")
                uploads.append(upload_file(self.docroot, p["post_size"], ".json"))
            else:
                paths.append(object_path(self.docroot, response, ".json"))
                uploads.append(None)
        run_curl(lab, curl(lab, p["host"], paths, tls=p, think_s=p["think_s"], uploads=uploads))


class TlsPage(TlsClass):
    name = "tls-page"
    description = "HTTPS page loads: one HTML document and many objects (css, js, images) fetched in parallel"

    def sample_workload(self, rng: random.Random, scale: float) -> Params:
        return sample_page(rng, scale)

    def run_flow(self, lab: LabContext, flow: FlowPlan) -> None:
        p = flow.params
        run_curl(lab, curl(lab, p["host"], page_paths(self.docroot, p), tls=p, parallel=p["parallel"]))


class TlsDownload(TlsClass):
    name = "tls-download"
    description = "HTTPS bulk downloads: one to three large files on one connection"

    def sample_workload(self, rng: random.Random, scale: float) -> Params:
        return sample_download(rng, scale)

    def run_flow(self, lab: LabContext, flow: FlowPlan) -> None:
        p = flow.params
        run_curl(lab, curl(lab, p["host"], [object_path(self.docroot, n) for n in p["files"]], tls=p))


class TlsUpload(TlsClass):
    name = "tls-upload"
    description = "HTTPS uploads: one to three large files PUT to the server"

    def sample_workload(self, rng: random.Random, scale: float) -> Params:
        return {"files": sizes(rng, rng.randint(1, 3), 200_000, 5_000_000, scale)}

    def run_flow(self, lab: LabContext, flow: FlowPlan) -> None:
        p = flow.params
        uploads: list[Path | None] = [upload_file(self.docroot, n) for n in p["files"]]
        paths = [f"/upload/{flow.index}-{i}.bin" for i in range(len(uploads))]
        run_curl(lab, curl(lab, p["host"], paths, tls=p, uploads=uploads))


class TlsStream(TlsClass):
    name = "tls-stream"
    description = "HTTPS media streaming: a long-lived connection fetching similar-sized segments at a steady pace"

    def sample_workload(self, rng: random.Random, scale: float) -> Params:
        segment = size(rng, 30_000, 400_000, scale)
        count = rng.randint(8, 20)
        return {"segments": [max(64, round(segment * rng.uniform(0.8, 1.2))) for _ in range(count)], "interval_s": seconds(rng, 0.1, 0.4)}

    def run_flow(self, lab: LabContext, flow: FlowPlan) -> None:
        p = flow.params
        paths = [object_path(self.docroot, n) for n in p["segments"]]
        run_curl(lab, curl(lab, p["host"], paths, tls=p, think_s=p["interval_s"]))
