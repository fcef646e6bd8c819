"""PPP (RFC 1661) in HDLC-like framing (RFC 1662), and the PPPoE session header (RFC 2516) that carries it."""

# Address and control bytes; both are left out when address/control field compression was negotiated.
# No protocol field starts with 0xFF (0x00FF is reserved), so the address byte alone tells them apart.
ADDRESS = 0xFF  # all stations
CONTROL = 0x03  # unnumbered information
FRAMING_LEN = 2

# Protocol field: 2 bytes, big endian, or 1 byte under protocol field compression. Protocol numbers are
# odd in their low byte and even in their high byte, so an odd first byte is a whole (compressed) field.
PROTOCOL_LEN = 2
PROTOCOL_IPV4 = 0x0021
PROTOCOL_IPV6 = 0x0057
PROTOCOL_MPLS = (0x0281, 0x0283)  # unicast, multicast

ETHERTYPE_PPPOE_SESSION = 0x8864
PPPOE_HEADER_LEN = 6  # version/type, code, session id, length; the 2-byte PPP protocol follows
