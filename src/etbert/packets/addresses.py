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


def format_addresses(addresses: np.ndarray) -> pa.StringArray:
    """Text of each row of an (n, 16) uint8 array, as an Arrow string array.

    IPv4 rows are joined from their four decimal octets by Arrow in one pass (captures with per-packet
    anonymised addresses have as many distinct addresses as flows); IPv6 rows are formatted once each.
    """
    addresses = np.ascontiguousarray(addresses, dtype=np.uint8).reshape(-1, 16)
    v4 = is_ipv4_mapped(addresses)
    octets = addresses[v4, 12:16]
    v4_text = pc.binary_join_element_wise(*(_OCTET_TEXT.take(pa.array(octets[:, i])) for i in range(4)), ".")
    if v4.all():
        return v4_text
    rows = addresses[~v4].view(np.dtype((np.void, 16))).ravel()
    distinct, inverse = np.unique(rows, return_inverse=True)
    v6_text = pa.array([format_address(row.tobytes()) for row in distinct], pa.string()).take(inverse.reshape(-1))
    # Row i is element position[i] of the v4 texts followed by the v6 texts.
    position = np.empty(len(addresses), dtype=np.int64)
    position[v4] = np.arange(v4.sum())
    position[~v4] = v4.sum() + np.arange((~v4).sum())
    return pa.concat_arrays([v4_text, v6_text]).take(pa.array(position))


_OCTET_TEXT = pa.array([str(octet) for octet in range(256)], pa.string())
_MAPPED_HIGH = np.uint64(int.from_bytes(IPV4_MAPPED_PREFIX[:8].tobytes(), "big"))
_MAPPED_LOW = np.uint64(int.from_bytes(IPV4_MAPPED_PREFIX[8:12].tobytes(), "big"))


def is_ipv4_mapped(addresses: np.ndarray) -> np.ndarray:
    """Which rows of an (n, 16) uint8 array hold IPv4 addresses."""
    words = np.ascontiguousarray(addresses, dtype=np.uint8).reshape(-1, 16).view(">u8")
    return (words[:, 0] == _MAPPED_HIGH) & ((words[:, 1] >> np.uint64(32)) == _MAPPED_LOW)
