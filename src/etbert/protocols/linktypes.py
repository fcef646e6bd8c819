"""LINKTYPE_* values (tcpdump.org/linktypes.html) the decoder understands."""

NULL = 0  # BSD loopback: 4-byte address family in the capturing host's byte order
ETHERNET = 1
RAW = 101  # raw IPv4 or IPv6, version read from the first nibble
RAW_OPENBSD = 12  # DLT_RAW as some BSDs number it
RAW_LEGACY = 14  # DLT_RAW on older BSDs
LOOP = 108  # OpenBSD loopback: 4-byte address family in network byte order
LINUX_SLL = 113
LINUX_SLL2 = 276
IPV4 = 228
IPV6 = 229

NAMES = {
    NULL: "null",
    ETHERNET: "ethernet",
    RAW: "raw",
    RAW_OPENBSD: "raw",
    RAW_LEGACY: "raw",
    LOOP: "loop",
    LINUX_SLL: "linux-sll",
    LINUX_SLL2: "linux-sll2",
    IPV4: "ipv4",
    IPV6: "ipv6",
}

SUPPORTED = frozenset(NAMES)


def name(linktype: int) -> str:
    return NAMES.get(linktype, f"linktype-{linktype}")
