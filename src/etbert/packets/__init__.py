"""Packet decoding: raw frames into header fields, vectorised over a batch."""
