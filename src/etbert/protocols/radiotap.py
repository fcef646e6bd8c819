"""Radiotap: the radio metadata header Linux and BSD monitor-mode captures put before 802.11 frames.

Fields are little endian, aligned to their own size from the start of the header, and present in the
order of the bits set in a chain of 32-bit presence words (bit 31: another word follows).
"""

VERSION = 0  # 1 byte, always 0
LENGTH = 2  # 2 bytes, little endian: the whole radiotap header, the 802.11 frame starts there
PRESENT = 4  # 4 bytes, little endian, the first presence word
HEADER_LEN = 8  # up to the end of the first presence word
PRESENT_WORD_LEN = 4
PRESENT_EXTENDED = 1 << 31
MAX_PRESENT_WORDS = 8  # longer chains than any driver writes are treated as malformed

# The first two fields the first presence word can announce, and all the decoder needs.
PRESENT_TSFT = 1 << 0
TSFT_LEN = 8  # and its alignment
PRESENT_FLAGS = 1 << 1  # 1 byte
FLAG_FCS = 0x10  # the 802.11 frame ends with its 4-byte FCS
FLAG_DATAPAD = 0x20  # padding between the 802.11 header and its payload, to a multiple of 4 bytes
FLAG_BAD_FCS = 0x40  # the frame failed its FCS check
DATAPAD_ALIGN = 4
