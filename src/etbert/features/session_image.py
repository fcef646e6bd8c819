"""The session image of the handshake CNN: a flow's first 1024 bytes as a 32x32 grayscale picture.

The packets of the session (both directions, in capture order, whole packets from the IP header on) are
concatenated and cut at 1024 bytes; a shorter session is zero-padded. Image row r holds bytes 32r..32r+31,
so the picture is the byte stream read left to right, top to bottom.

The paper images Ethernet frames, whose first 12 bytes are MAC addresses it randomises. Stored packets
start at the IP header (the flow meter drops the link layer), so MAC bytes never enter these images and
every offset is 14 bytes earlier than in the paper's table; IP addresses, IP identification and ports are
found by the dataset's anonymiser from the parsed headers (IPv4 with options, IPv6 with extension
headers, whatever the capture's link type), not by fixed offsets.

The images cover exactly the first 1024 session bytes whenever the stored packets reach that far (K
packets of up to the byte cap each, see the manifest); a flow that ended sooner is padded as on the wire.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from etbert.dataset.anonymize import anonymize_batch

IMAGE_SIDE = 32
IMAGE_BYTES = IMAGE_SIDE * IMAGE_SIDE
COLUMNS = ("pkt_bytes", "pkt_l4_offset", "pkt_direction")
RANDOMISING_POLICY = "seed-004"  # the paper's replacements: IP addresses, IP identification, ports


def session_images(flows: pa.Table, identity_seeds: np.ndarray | None = None) -> np.ndarray:
    """uint8 array (flows, 32, 32) of each flow's first 1024 session bytes, zero-padded.

    With ``identity_seeds`` (one uint64 per flow), the identity fields are first replaced by random bytes
    of the same length (the ``seed-004`` policy, flow i drawing from seed i): the image then shows the
    traffic's class, not its hosts. On a dataset already anonymised this replaces random bytes by other
    random bytes, which changes nothing a model can learn from.
    """
    packets = flows.column("pkt_bytes").combine_chunks()
    if identity_seeds is not None:
        packets = anonymize_batch(packets, flows.column("pkt_l4_offset").combine_chunks(),
                                  flows.column("pkt_direction").combine_chunks(), RANDOMISING_POLICY,
                                  np.asarray(identity_seeds, dtype=np.uint64))
    # 64-bit offsets: a large table's sessions together may pass 2 GiB before they are cut
    joined = pc.binary_join(packets.cast(pa.list_(pa.large_binary())), pa.scalar(b"", pa.large_binary()))
    return byte_images(joined)


def byte_images(sessions: pa.Array) -> np.ndarray:
    """(n, 32, 32) uint8 of large_binary values cut at 1024 bytes and zero-padded (null: all zeros)."""
    sessions = pc.binary_slice(sessions.fill_null(b""), 0, IMAGE_BYTES)
    offsets = np.frombuffer(sessions.buffers()[1], dtype=np.int64)[sessions.offset:sessions.offset + len(sessions) + 1]
    data = np.frombuffer(sessions.buffers()[2] or b"", dtype=np.uint8)
    lengths = np.diff(offsets)
    images = np.zeros((len(sessions), IMAGE_BYTES), dtype=np.uint8)
    row = np.repeat(np.arange(len(sessions)), lengths)
    column = np.arange(len(row)) - np.repeat(offsets[:-1] - offsets[0], lengths)
    images[row, column] = data[offsets[0]:offsets[-1]]
    return images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
