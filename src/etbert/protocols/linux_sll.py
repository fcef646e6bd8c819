"""Linux "cooked" capture headers (tcpdump -i any)."""

SLL_HEADER_LEN = 16
SLL_PROTOCOL = 14  # 2 bytes, big endian ethertype

SLL2_HEADER_LEN = 20
SLL2_PROTOCOL = 0  # 2 bytes, big endian ethertype
