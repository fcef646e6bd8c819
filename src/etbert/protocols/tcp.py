"""TCP header (RFC 9293) and the options that carry identity."""

PROTOCOL = 6
SRC_PORT = slice(0, 2)
DST_PORT = slice(2, 4)
SEQ = slice(4, 8)
ACK = slice(8, 12)
DATA_OFFSET = 12  # high nibble: header length in 32-bit words
FLAGS = 13
WINDOW = slice(14, 16)
CHECKSUM = slice(16, 18)
URGENT = slice(18, 20)
MIN_HEADER_LEN = 20

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK_FLAG = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

OPTION_END = 0
OPTION_NOP = 1
OPTION_MSS = 2  # kind, len=4, maximum segment size (2)
OPTION_WINDOW_SCALE = 3  # kind, len=3, shift count (1)
OPTION_SACK_PERMITTED = 4  # kind, len=2
OPTION_TIMESTAMP = 8  # kind, len=10, TSval (4), TSecr (4)
TIMESTAMP_OPTION_LEN = 10

OPTION_SACK = 5  # kind, len, then (left edge, right edge) pairs of 4-byte sequence numbers
SACK_EDGE_LEN = 4
OPTION_DATA_START = 2  # kind, length, then the option's data
