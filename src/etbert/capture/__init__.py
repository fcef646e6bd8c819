"""Capture reading: pcap and pcapng files into batches of raw frames."""
