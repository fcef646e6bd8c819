"""16-byte addresses (IPv4 stored IPv4-mapped) as text, for reports and flow records."""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etbert.packets.network import IPV4_MAPPED_PREFIX


def format_address(address: np.ndarray | bytes) -> str:
    """"10.0.0.1" for an IPv4-mapped address, compressed IPv6 text ("2001:db8::1") otherwise."""
    raw = bytes(address)
    if raw[:12] == IPV4_MAPPED_PREFIX.tobytes():
        return str(ipaddress.IPv4Address(raw[12:]))
    return str(ipaddress.IPv6Address(raw))


def format_addresses(addresses: np.ndarray) -> list[str]:
    """Text of each row of an (n, 16) uint8 array.

    IPv4 rows are joined from their four decimal octets by Arrow in one pass (captures with per-packet
    anonymised addresses have as many distinct addresses as flows); IPv6 rows are formatted once each.
    """
    if not len(addresses):
        return []
    addresses = np.ascontiguousarray(addresses, dtype=np.uint8)
    text = np.empty(len(addresses), dtype=object)
    v4 = is_ipv4_mapped(addresses)
    if v4.any():
        octets = [pc.cast(pa.array(addresses[v4, 12 + i]), pa.string()) for i in range(4)]
        text[v4] = pc.binary_join_element_wise(*octets, ".").to_numpy(zero_copy_only=False)
    if (~v4).any():
        rows = addresses[~v4].view(np.dtype((np.void, 16))).ravel()
        distinct, inverse = np.unique(rows, return_inverse=True)
        texts = np.array([format_address(row.tobytes()) for row in distinct], dtype=object)
        text[~v4] = texts[inverse.reshape(-1)]
    return text.tolist()


def is_ipv4_mapped(addresses: np.ndarray) -> np.ndarray:
    """Which rows of an (n, 16) uint8 array hold IPv4 addresses."""
    return (addresses[:, :12] == IPV4_MAPPED_PREFIX).all(axis=1)
