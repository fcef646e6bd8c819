"""Self-signed certificates for the lab's servers, made fresh per run with openssl."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DOMAIN = "lab.test"  # RFC 6761 reserved: never resolvable outside the lab

KEY_ALGORITHMS = {
    "rsa": ["-newkey", "rsa:2048"],
    "ecdsa": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
}


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


def self_signed(directory: Path, algorithm: str, common_name: str = f"*.{DOMAIN}") -> Certificate:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{algorithm}.crt", directory / f"{algorithm}.key"
    argv = [
        "openssl", "req", "-x509", *KEY_ALGORITHMS[algorithm], "-nodes", "-days", "30",
        "-subj", f"/CN={common_name}", "-addext", f"subjectAltName=DNS:{common_name},DNS:{DOMAIN}",
        "-keyout", str(key), "-out", str(cert),
    ]
    subprocess.run(argv, check=True, capture_output=True)
    return Certificate(cert, key)


def certificate_authority(directory: Path) -> Certificate:
    """A CA that signs the lab's server and client certificates (OpenVPN checks the chain)."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "ca.crt", directory / "ca.key"
    argv = [
        "openssl", "req", "-x509", *KEY_ALGORITHMS["ecdsa"], "-nodes", "-days", "30", "-subj", "/CN=etbert lab CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", str(key), "-out", str(cert),
    ]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True)
    return Certificate(cert, key)


def issue(directory: Path, authority: Certificate, name: str, usage: str) -> Certificate:
    """A certificate for ``name`` signed by ``authority``; ``usage`` is "serverAuth" or "clientAuth"."""
    cert, key, request, extensions = (directory / f"{name}{suffix}" for suffix in (".crt", ".key", ".csr", ".ext"))
    extensions.write_text(f"extendedKeyUsage={usage}\nkeyUsage=critical,digitalSignature,keyAgreement\n")
    subprocess.run(["openssl", "req", "-new", *KEY_ALGORITHMS["ecdsa"], "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(request)], check=True, capture_output=True)
    sign = ["openssl", "x509", "-req", "-in", str(request), "-CA", str(authority.cert), "-CAkey", str(authority.key), "-set_serial", str(abs(hash(name)) % 10**9)]
    subprocess.run([*sign, "-days", "30", "-extfile", str(extensions), "-out", str(cert)], check=True, capture_output=True)
    return Certificate(cert, key)
