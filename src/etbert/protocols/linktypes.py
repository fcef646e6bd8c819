"""LINKTYPE_* values (tcpdump.org/linktypes.html) the decoder understands."""

NULL = 0  # BSD loopback: 4-byte address family in the capturing host's byte order
ETHERNET = 1
PPP = 9  # PPP, with or without HDLC-like address and control bytes
RAW = 101  # raw IPv4 or IPv6, version read from the first nibble
RAW_OPENBSD = 12  # DLT_RAW as some BSDs number it
RAW_LEGACY = 14  # DLT_RAW on older BSDs
PPP_HDLC = 50  # PPP in HDLC-like framing (or Cisco HDLC) on serial lines
C_HDLC = 104  # Cisco HDLC
IEEE802_11 = 105  # 802.11 frames, no radio header
LOOP = 108  # OpenBSD loopback: 4-byte address family in network byte order
LINUX_SLL = 113
PFLOG = 117  # OpenBSD/FreeBSD pf firewall log
IEEE802_11_RADIOTAP = 127  # 802.11 frames behind a radiotap header (monitor mode)
LINUX_SLL2 = 276
IPV4 = 228
IPV6 = 229
NFLOG = 239  # Linux netfilter log messages

NAMES = {
    NULL: "null",
    ETHERNET: "ethernet",
    PPP: "ppp",
    PPP_HDLC: "ppp-hdlc",
    C_HDLC: "cisco-hdlc",
    IEEE802_11: "ieee802.11",
    IEEE802_11_RADIOTAP: "ieee802.11-radiotap",
    RAW: "raw",
    RAW_OPENBSD: "raw",
    RAW_LEGACY: "raw",
    LOOP: "loop",
    LINUX_SLL: "linux-sll",
    LINUX_SLL2: "linux-sll2",
    PFLOG: "pflog",
    NFLOG: "nflog",
    IPV4: "ipv4",
    IPV6: "ipv6",
}

SUPPORTED = frozenset(NAMES)


def name(linktype: int) -> str:
    return NAMES.get(linktype, f"linktype-{linktype}")
