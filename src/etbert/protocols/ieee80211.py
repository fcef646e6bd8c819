"""IEEE 802.11 MAC header of data frames, the only frames that carry IP."""

FRAME_CONTROL = 0  # 2 bytes: version (2 bits), type (2 bits), subtype (4 bits); then the flags byte
TYPE_VERSION_MASK = 0x0F
TYPE_DATA = 0x08  # type 2 with protocol version 0, as bits of the first byte
SUBTYPE_SHIFT = 4
SUBTYPE_QOS = 0x08  # QoS data subtypes: a 2-byte QoS control field ends the header
SUBTYPE_NO_BODY = 0x04  # null-function and CF-only subtypes: nothing follows the header

FLAGS = 1
TO_DS = 0x01
FROM_DS = 0x02
PROTECTED = 0x40  # the body is encrypted (WEP, TKIP, CCMP, GCMP)
ORDER = 0x80  # on QoS frames: a 4-byte HT control field follows the QoS control field

HEADER_LEN = 24  # frame control, duration, three addresses, sequence control
ADDRESS4_LEN = 6  # a fourth address when both ToDS and FromDS are set (wireless distribution system)
QOS_CONTROL_LEN = 2
HT_CONTROL_LEN = 4
SEQUENCE_CONTROL = 22  # 2 bytes, little endian: fragment number in the low 4 bits
FRAGMENT_NUMBER_MASK = 0x000F
QOS_CONTROL = 24  # after three addresses; 30 after four
QOS_AMSDU = 0x80  # first QoS control byte: the body is an A-MSDU (several packets behind subframe headers)
