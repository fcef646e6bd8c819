"""UDP header (RFC 768)."""

PROTOCOL = 17
SRC_PORT = slice(0, 2)
DST_PORT = slice(2, 4)
LENGTH = slice(4, 6)
CHECKSUM = slice(6, 8)
HEADER_LEN = 8
