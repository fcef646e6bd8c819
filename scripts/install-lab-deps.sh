#!/usr/bin/env bash
# Debian packages the traffic lab (`etbert lab`) runs. Idempotent: apt-get skips what is installed.
# Services are never started here: the lab starts every daemon itself, inside its own namespaces.
set -euo pipefail

packages=(
    iproute2 ethtool tcpdump procps         # namespaces, veth, offloads, netem, capture
    openssl curl nginx                # TLS 1.2 / 1.3 web and plain HTTP
    openssh-server openssh-client           # SSH
    shadowsocks-libev                       # Shadowsocks
    v2ray                                   # V2Ray / VMess
    openvpn                                 # OpenVPN
    wireguard-go wireguard-tools            # WireGuard in userspace (no kernel module here)
    dnsmasq-base bind9-dnsutils                 # background DNS
)

if [ "$(id -u)" -ne 0 ]; then
    echo "install-lab-deps.sh: run as root (it installs Debian packages)" >&2
    exit 1
fi

missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "lab dependencies already installed"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# policy-rc.d exit 101: Debian would otherwise start nginx/sshd/openvpn on the host at install time.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get install -y -q --no-install-recommends "${missing[@]}"
