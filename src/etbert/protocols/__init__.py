"""Header knowledge, one module per protocol: field offsets and lengths, named after the protocol.

Both the vectorised decoder and the anonymiser take offsets from here; nothing else
hard-codes a header layout.
"""
