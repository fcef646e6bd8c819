"""SSH (OpenSSH): remote commands, interactive sessions typed key by key, and scp/sftp transfers."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

from etbert.lab.classes.base import LabClass, LabContext
from etbert.lab.classes.web import object_path
from etbert.lab.plan import FlowPlan, Params, pick, seconds, size
from etbert.lab.processes import run_client, run_typed_client

PORT = 22
PRIVSEP_DIR = Path("/run/sshd")
CIPHERS = ("chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com", "aes128-ctr", "aes256-ctr")
KEX = ("sntrup761x25519-sha512@openssh.com", "curve25519-sha256", "ecdh-sha2-nistp256", "diffie-hellman-group14-sha256")
HOST_KEYS = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512")
COMMANDS = ("ls -l /etc", "uname -a", "cat /etc/os-release", "df -h", "ps aux | head -n 20", "ls /usr/bin | head -n 60", "id", "free -m", "env | sort", "ip addr")
KINDS = ("command", "interactive", "scp-get", "scp-put", "sftp")

SSHD_CONFIG = """\
ListenAddress {address}:{port}
HostKey {work}/host_ed25519
HostKey {work}/host_ecdsa
HostKey {work}/host_rsa
PidFile {work}/sshd.pid
AuthorizedKeysFile {work}/authorized_keys
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
MaxStartups 200
MaxSessions 50
LogLevel ERROR
Subsystem sftp internal-sftp
"""


def keygen(path: Path, algorithm: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", algorithm, "-N", "", "-f", str(path)], check=True, capture_output=True)


class Ssh(LabClass):
    name = "ssh"
    description = "SSH: remote commands, interactive shell sessions typed key by key, scp and sftp transfers"
    debian_packages = ("openssh-server", "openssh-client")
    binaries = ("sshd", "ssh", "scp", "sftp", "ssh-keygen")

    def sample(self, rng: random.Random, scale: float) -> Params:
        kind = pick(rng, KINDS)
        params: Params = {"kind": kind, "cipher": pick(rng, CIPHERS), "kex": pick(rng, KEX), "host_key": pick(rng, HOST_KEYS)}
        if kind == "command":
            params["output"] = size(rng, 200, 200_000, scale)
        elif kind == "interactive":
            params["commands"] = rng.sample(COMMANDS, rng.randint(2, 5))
            params["key_pause_s"] = seconds(rng, 0.02, 0.12)
            params["think_s"] = seconds(rng, 0.2, 1.0)
        else:
            params["files"] = [size(rng, 5_000, 3_000_000, scale) for _ in range(rng.randint(1, 3) if kind == "sftp" else 1)]
            if kind == "sftp":
                params["directions"] = [pick(rng, ("get", "put")) for _ in params["files"]]
        return params

    def start(self, lab: LabContext) -> None:
        if not PRIVSEP_DIR.exists():  # sshd refuses to start without it; Debian creates it only via systemd
            PRIVSEP_DIR.mkdir()
            lab.cleanup.push(f"remove {PRIVSEP_DIR}", PRIVSEP_DIR.rmdir)
        for name, algorithm in (("host_ed25519", "ed25519"), ("host_ecdsa", "ecdsa"), ("host_rsa", "rsa"), ("client", "ed25519")):
            keygen(lab.workdir / name, algorithm)
        (lab.workdir / "authorized_keys").write_text((lab.workdir / "client.pub").read_text())
        config = lab.workdir / "sshd_config"
        config.write_text(SSHD_CONFIG.format(address=lab.server, port=PORT, work=lab.workdir))
        config.chmod(0o600)
        lab.server_daemon(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)], "sshd", port=PORT)
        self.files = lab.workdir / "files"
        self.files.mkdir()

    def options(self, lab: LabContext, params: Params) -> list[str]:
        return [
            "-F", "/dev/null", "-i", str(lab.workdir / "client"),
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
            "-o", f"Ciphers={params['cipher']}", "-o", f"KexAlgorithms={params['kex']}", "-o", f"HostKeyAlgorithms={params['host_key']}",
        ]  # fmt: skip

    def run_flow(self, lab: LabContext, flow: FlowPlan) -> None:
        p, ns, remote = flow.params, lab.topology.client_ns, f"root@{lab.server}"
        kind = p["kind"]
        if kind == "command":
            run_client(ns, ["ssh", *self.options(lab, p), remote, f"head -c {p['output']} /dev/urandom | base64"])
            return
        if kind == "interactive":
            keystrokes = []
            for command in [*p["commands"], "exit"]:
                keystrokes += [(char, p["key_pause_s"]) for char in command]
                keystrokes.append(("\n", p["think_s"]))  # think after Enter while the output arrives
            run_typed_client(ns, ["ssh", "-tt", *self.options(lab, p), remote], keystrokes)
            return
        # Transfers: both ends share this host's filesystem, so sources live in files/, copies in transfers/<flow>/
        sources = [self.files / object_path(self.files, n).lstrip("/") for n in p["files"]]
        target = lab.workdir / "transfers" / str(flow.index)
        target.mkdir(parents=True)
        if kind == "scp-get":
            run_client(ns, ["scp", "-q", *self.options(lab, p), f"{remote}:{sources[0]}", str(target)])
        elif kind == "scp-put":
            run_client(ns, ["scp", "-q", *self.options(lab, p), str(sources[0]), f"{remote}:{target}/"])
        else:
            batch = "".join(f"{direction} {source} {target}/\n" for direction, source in zip(p["directions"], sources))
            run_client(ns, ["sftp", "-q", "-b", "-", *self.options(lab, p), remote], stdin=batch.encode())
