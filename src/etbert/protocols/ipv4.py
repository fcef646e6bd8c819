"""IPv4 header (RFC 791)."""

VERSION_IHL = 0  # high nibble version, low nibble header length in 32-bit words
TOS = 1
TOTAL_LENGTH = 2  # 2 bytes
IDENTIFICATION = slice(4, 6)
FLAGS_FRAGMENT = 6  # 2 bytes: 3 flag bits, 13-bit fragment offset in 8-byte units
DONT_FRAGMENT = 0x4000
MORE_FRAGMENTS = 0x2000
FRAGMENT_OFFSET_MASK = 0x1FFF
TTL = 8
PROTOCOL = 9
CHECKSUM = slice(10, 12)
SRC = slice(12, 16)
DST = slice(16, 20)
MIN_HEADER_LEN = 20
ADDRESS_LEN = 4

# Options (RFC 791 section 3.1): END and NOP are one byte; every other option is kind, length, data.
OPTION_END = 0
OPTION_NOP = 1
OPTION_RECORD_ROUTE = 7
OPTION_LOOSE_SOURCE_ROUTE = 131
OPTION_STRICT_SOURCE_ROUTE = 137
ROUTE_OPTIONS = frozenset({OPTION_RECORD_ROUTE, OPTION_LOOSE_SOURCE_ROUTE, OPTION_STRICT_SOURCE_ROUTE})
ROUTE_ADDRESSES_START = 3  # kind, length, pointer, then one address per 4 bytes
