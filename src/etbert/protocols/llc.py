"""IEEE 802.2 LLC with a SNAP header (RFC 1042), how 802.11 names the protocol of its payload."""

HEADER_LEN = 8
DSAP = 0
SSAP = 1
CONTROL = 2
SAP_SNAP = 0xAA
CONTROL_UNNUMBERED = 0x03
OUI = 3  # 3 bytes
OUIS_WITH_ETHERTYPE = (0x000000, 0x0000F8)  # RFC 1042, 802.1H bridge tunnel
ETHERTYPE = 6  # 2 bytes, big endian
