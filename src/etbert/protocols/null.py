"""BSD null/loopback encapsulation: a 4-byte address family before the IP header."""

HEADER_LEN = 4
# The family's byte order is the capturing host's, so the decoder reads the IP version nibble instead.
