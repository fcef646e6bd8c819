"""IPv6 header (RFC 8200) and the extension headers the decoder walks."""

HEADER_LEN = 40
VERSION_CLASS_FLOW = slice(0, 4)  # 4-bit version, 8-bit traffic class, 20-bit flow label
FLOW_LABEL = slice(1, 4)  # low 4 bits of byte 1 and bytes 2-3 (mask 0x0FFFFF)
FLOW_LABEL_MASK = 0x0FFFFF  # of the first 4 bytes as a big-endian word
TRAFFIC_CLASS_SHIFT = 20  # the traffic class sits above the flow label in that word
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
