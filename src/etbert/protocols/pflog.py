"""OpenBSD/FreeBSD pf firewall logs (LINKTYPE_PFLOG): a pfloghdr, its layout varying by OS and release.

Every layout starts with its own length and the logged packet's address family; the packet follows
the header padded to a multiple of 4 bytes.
"""

LENGTH = 0  # 1 byte
FAMILY = 1  # 1 byte, a BSD address family (etbert.protocols.null)
MIN_LENGTH = 45  # the oldest layout: length .. direction, without uid and pid
ALIGN = 4
