"""16-byte addresses (IPv4 stored IPv4-mapped) as text, for reports and flow records."""

from __future__ import annotations

import ipaddress

import numpy as np

from etbert.packets.network import IPV4_MAPPED_PREFIX


def format_address(address: np.ndarray | bytes) -> str:
    """"10.0.0.1" for an IPv4-mapped address, compressed IPv6 text ("2001:db8::1") otherwise."""
    raw = bytes(address)
    if raw[:12] == IPV4_MAPPED_PREFIX.tobytes():
        return str(ipaddress.IPv4Address(raw[12:]))
    return str(ipaddress.IPv6Address(raw))


def format_addresses(addresses: np.ndarray) -> list[str]:
    """Text of each row of an (n, 16) uint8 array; each distinct address is formatted once."""
    if not len(addresses):
        return []
    rows = np.ascontiguousarray(addresses, dtype=np.uint8).view(np.dtype((np.void, 16))).ravel()
    distinct, inverse = np.unique(rows, return_inverse=True)  # void rows sort far faster than axis=0
    texts = [format_address(row.tobytes()) for row in distinct]
    return [texts[i] for i in inverse.reshape(-1)]


def is_ipv4_mapped(addresses: np.ndarray) -> np.ndarray:
    """Which rows of an (n, 16) uint8 array hold IPv4 addresses."""
    return (addresses[:, :12] == IPV4_MAPPED_PREFIX).all(axis=1)
