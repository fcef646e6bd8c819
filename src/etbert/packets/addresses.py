"""16-byte addresses (IPv4 stored IPv4-mapped) as text, for reports and flow records."""

from __future__ import annotations

import ipaddress

import numpy as np
import pyarrow as pa

from etbert.compiled import compiled
from etbert.packets.network import IPV4_MAPPED_PREFIX


def format_address(address: np.ndarray | bytes) -> str:
    """"10.0.0.1" for an IPv4-mapped address, compressed IPv6 text ("2001:db8::1") otherwise."""
    raw = bytes(address)
    if raw[:12] == IPV4_MAPPED_PREFIX.tobytes():
        return str(ipaddress.IPv4Address(raw[12:]))
    return str(ipaddress.IPv6Address(raw))


def format_addresses(addresses: np.ndarray) -> pa.StringArray:
    """Text of each row of an (n, 16) uint8 array, as an Arrow string array.

    IPv4 addresses are written by a compiled loop (flow records need two per flow, and captures of
    one-packet flows hold hundreds of thousands); IPv6 ones by the standard library, once per distinct
    address, then copied into place by the same loop.
    """
    addresses = np.ascontiguousarray(addresses, dtype=np.uint8).reshape(-1, 16)
    v4 = is_ipv4_mapped(addresses)
    text_of: dict[bytes, bytes] = {}
    v6_texts = []
    for raw in map(bytes, addresses[~v4]):
        if raw not in text_of:
            text_of[raw] = format_address(raw).encode()
        v6_texts.append(text_of[raw])
    v6_data = np.frombuffer(b"".join(v6_texts) or b"\0", dtype=np.uint8)
    v6_offsets = np.zeros(len(v6_texts) + 1, dtype=np.int64)
    np.cumsum([len(text) for text in v6_texts], out=v6_offsets[1:])
    data = np.empty(_MAX_IPV4_TEXT * int(v4.sum()) + int(v6_offsets[-1]), dtype=np.uint8)
    offsets = np.empty(len(addresses) + 1, dtype=np.int32)
    _write_texts(addresses, v4, v6_data, v6_offsets, data, offsets)
    return pa.StringArray.from_buffers(len(addresses), pa.py_buffer(offsets), pa.py_buffer(data[: offsets[-1]]))


_MAX_IPV4_TEXT = len("255.255.255.255")


@compiled
def _write_texts(addresses, v4, v6_data, v6_offsets, data, offsets):
    """Every address's text back to back into ``data`` (Arrow string offsets into ``offsets``): dotted
    quads for IPv4 rows, and the next of the ready IPv6 texts for the others."""
    at = 0
    v6 = 0
    offsets[0] = 0
    for row in range(len(addresses)):
        if v4[row]:
            for octet in range(12, 16):
                value = addresses[row, octet]
                if value >= 100:
                    data[at] = 48 + value // 100
                    at += 1
                if value >= 10:
                    data[at] = 48 + value // 10 % 10
                    at += 1
                data[at] = 48 + value % 10
                data[at + 1] = 46  # "."
                at += 2
            at -= 1  # no dot after the last octet
        else:
            for j in range(v6_offsets[v6], v6_offsets[v6 + 1]):
                data[at] = v6_data[j]
                at += 1
            v6 += 1
        offsets[row + 1] = at


_MAPPED_HIGH = np.uint64(int.from_bytes(IPV4_MAPPED_PREFIX[:8].tobytes(), "big"))
_MAPPED_LOW = np.uint64(int.from_bytes(IPV4_MAPPED_PREFIX[8:12].tobytes(), "big"))


def is_ipv4_mapped(addresses: np.ndarray) -> np.ndarray:
    """Which rows of an (n, 16) uint8 array hold IPv4 addresses."""
    words = np.ascontiguousarray(addresses, dtype=np.uint8).reshape(-1, 16).view(">u8")
    return (words[:, 0] == _MAPPED_HIGH) & ((words[:, 1] >> np.uint64(32)) == _MAPPED_LOW)
