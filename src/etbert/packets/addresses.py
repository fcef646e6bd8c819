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

    Each distinct address is formatted once (Arrow's hash encoding finds them): IPv4 ones joined from
    their four decimal octets by Arrow in one pass, IPv6 ones by the standard library.
    """
    addresses = np.ascontiguousarray(addresses, dtype=np.uint8).reshape(-1, 16)
    encoded = pa.Array.from_buffers(pa.binary(16), len(addresses), [None, pa.py_buffer(addresses)]).dictionary_encode()
    distinct = np.frombuffer(encoded.dictionary.buffers()[1], dtype=np.uint8).reshape(-1, 16)
    distinct = distinct[encoded.dictionary.offset : encoded.dictionary.offset + len(encoded.dictionary)]
    v4 = is_ipv4_mapped(distinct)
    octets = distinct[v4, 12:16]
    v4_text = pc.binary_join_element_wise(*(_OCTET_TEXT.take(pa.array(octets[:, i])) for i in range(4)), ".")
    v6_text = pa.array([format_address(row.tobytes()) for row in distinct[~v4]], pa.string())
    # Distinct address i is element position[i] of the v4 texts followed by the v6 texts.
    position = np.empty(len(distinct), dtype=np.int64)
    position[v4] = np.arange(v4.sum())
    position[~v4] = v4.sum() + np.arange((~v4).sum())
    return pa.concat_arrays([v4_text, v6_text]).take(pa.array(position[encoded.indices.to_numpy()]))


_OCTET_TEXT = pa.array([str(octet) for octet in range(256)], pa.string())
_MAPPED_HIGH = np.uint64(int.from_bytes(IPV4_MAPPED_PREFIX[:8].tobytes(), "big"))
_MAPPED_LOW = np.uint64(int.from_bytes(IPV4_MAPPED_PREFIX[8:12].tobytes(), "big"))


def is_ipv4_mapped(addresses: np.ndarray) -> np.ndarray:
    """Which rows of an (n, 16) uint8 array hold IPv4 addresses."""
    words = np.ascontiguousarray(addresses, dtype=np.uint8).reshape(-1, 16).view(">u8")
    return (words[:, 0] == _MAPPED_HIGH) & ((words[:, 1] >> np.uint64(32)) == _MAPPED_LOW)
