"""Ethernet II and 802.1Q/802.1ad VLAN tags."""

HEADER_LEN = 14
DST_MAC = slice(0, 6)
SRC_MAC = slice(6, 12)
ETHERTYPE = 12  # 2 bytes, big endian

VLAN_TAG_LEN = 4  # TCI (2) + inner ethertype (2)
VLAN_ETHERTYPES = frozenset({0x8100, 0x88A8, 0x9100})  # 802.1Q, 802.1ad (QinQ), legacy QinQ

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
