"""BSD null/loopback encapsulation: a 4-byte address family before the IP header."""

HEADER_LEN = 4
# The family's byte order is the capturing host's, so the decoder reads the IP version nibble instead.

# Address families as BSD link headers (null, loop, pflog) carry them.
AF_INET = 2
AF_INET6 = (10, 23, 24, 28, 30)  # Linux, Windows, Net/OpenBSD, FreeBSD, Darwin
