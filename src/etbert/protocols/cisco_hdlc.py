"""Cisco HDLC: address, control, then the protocol in ethertype numbering."""

HEADER_LEN = 4
ADDRESS = 0  # 1 byte
ADDRESSES = (0x0F, 0x8F)  # unicast, broadcast: how PPP-serial captures tell Cisco HDLC frames from PPP ones
PROTOCOL = 2  # 2 bytes, big endian ethertype
