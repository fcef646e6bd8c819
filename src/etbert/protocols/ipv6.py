"""IPv6 header (RFC 8200) and the extension headers the decoder walks."""

HEADER_LEN = 40
VERSION_CLASS_FLOW = slice(0, 4)  # 4-bit version, 8-bit traffic class, 20-bit flow label
FLOW_LABEL = slice(1, 4)  # low 4 bits of byte 1 and bytes 2-3 (mask 0x0FFFFF)
PAYLOAD_LENGTH = 4  # 2 bytes
NEXT_HEADER = 6
HOP_LIMIT = 7
SRC = slice(8, 24)
DST = slice(24, 40)
ADDRESS_LEN = 16

# Extension headers whose length is (byte 1 + 1) * 8 bytes.
HOP_BY_HOP = 0
ROUTING = 43
DESTINATION_OPTIONS = 60
MOBILITY = 135
HIP = 139
SHIM6 = 140
GENERIC_EXTENSIONS = frozenset({HOP_BY_HOP, ROUTING, DESTINATION_OPTIONS, MOBILITY, HIP, SHIM6})
# Authentication header: length is (byte 1 + 2) * 4 bytes.
AUTHENTICATION = 51
# Fragment header: fixed 8 bytes.
FRAGMENT = 44
FRAGMENT_HEADER_LEN = 8
FRAGMENT_OFFSET = 2  # 2 bytes: 13-bit offset << 3 | 2 reserved bits | M flag
FRAGMENT_MORE = 0x0001
FRAGMENT_IDENTIFICATION = slice(4, 8)
NO_NEXT_HEADER = 59

EXTENSION_NEXT_HEADER = 0  # every extension header starts with the next header's kind, then its length
EXTENSION_LENGTH = 1
MAX_EXTENSION_HEADERS = 8  # longer chains than any real stack sends are treated as malformed


def extension_header_len(kind: int, length_byte: int) -> int:
    """Bytes of one extension header, from its kind and its length byte."""
    if kind == FRAGMENT:
        return FRAGMENT_HEADER_LEN
    if kind == AUTHENTICATION:
        return (length_byte + 2) * 4
    return (length_byte + 1) * 8


def extension_chain(packet: bytes) -> tuple[list[tuple[int, int, int]], int | None, int]:
    """Walk one packet's extension headers: ([(kind, start, stop), ...], upper-layer protocol, its offset).

    The protocol is None when the chain is cut off by the end of ``packet``, is too long, or reaches a
    non-first fragment (what follows the fragment header is then not a header).
    """
    headers: list[tuple[int, int, int]] = []
    if len(packet) < HEADER_LEN:
        return headers, None, HEADER_LEN
    kind, at = packet[NEXT_HEADER], HEADER_LEN
    while kind in GENERIC_EXTENSIONS or kind in (AUTHENTICATION, FRAGMENT):
        if len(headers) == MAX_EXTENSION_HEADERS or at + EXTENSION_LENGTH >= len(packet):
            return headers, None, at
        stop = at + extension_header_len(kind, packet[at + EXTENSION_LENGTH])
        headers.append((kind, at, stop))
        if kind == FRAGMENT and _later_fragment(packet, at):
            return headers, None, stop
        kind, at = packet[at + EXTENSION_NEXT_HEADER], stop
    return headers, kind, at


def _later_fragment(packet: bytes, header_start: int) -> bool:
    field = packet[header_start + FRAGMENT_OFFSET : header_start + FRAGMENT_OFFSET + 2]
    return len(field) == 2 and (int.from_bytes(field, "big") >> 3) > 0
