"""Linux netfilter NFLOG messages (LINKTYPE_NFLOG): a 4-byte header, then type-length-value attributes.

Attribute lengths and types are in the byte order of the capturing host (libpcap swaps them only into
the host reading the file), so the decoder tells the order from the first attribute's type.
"""

FAMILY = 0  # 1 byte: netfilter protocol family of the logged packet
FAMILY_IPV4 = 2
FAMILY_IPV6 = 10
HEADER_LEN = 4  # family, version, resource id (2 bytes, big endian)

TLV_LENGTH = 0  # 2 bytes, host order, includes the 4-byte TLV header but not the padding
TLV_TYPE = 2  # 2 bytes, host order; the top two bits are netlink flags
TLV_HEADER_LEN = 4
TLV_ALIGN = 4
TLV_TYPE_MASK = 0x3FFF
MAX_TLV_TYPE = 0xFF  # real attribute types are small: a larger one is a byte order misread
TYPE_PAYLOAD = 9  # NFULA_PAYLOAD: the logged packet, from its network header on
MAX_TLVS = 32  # more attributes than the kernel defines are treated as malformed
