"""IPv4 header (RFC 791)."""

VERSION_IHL = 0  # high nibble version, low nibble header length in 32-bit words
TOS = 1
TOTAL_LENGTH = 2  # 2 bytes
IDENTIFICATION = slice(4, 6)
FLAGS_FRAGMENT = 6  # 2 bytes: 3 flag bits, 13-bit fragment offset in 8-byte units
MORE_FRAGMENTS = 0x2000
FRAGMENT_OFFSET_MASK = 0x1FFF
TTL = 8
PROTOCOL = 9
CHECKSUM = slice(10, 12)
SRC = slice(12, 16)
DST = slice(16, 20)
MIN_HEADER_LEN = 20
ADDRESS_LEN = 4
