"""`etbert prepare` time and peak memory as the number of flows open at once grows, packets held constant.

    .venv/bin/python benchmarks/bench_concurrent_flows.py [--packets 2000000] [--flows 2000 200000]

Each capture is synthetic: UDP packets of 40 payload bytes sent round robin over N flows (every flow open
for the whole capture, 10 us between packets). Each `prepare` runs in its own process, so its peak RSS
is its own; the time is `prepare` alone, after a warm-up run that compiles or loads the compiled loops.
"""

from __future__ import annotations

import argparse
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

PAYLOAD = 40


def round_robin_capture(path: Path, flows: int, packets: int) -> None:
    """A pcap of ``packets`` Ethernet/IPv4/UDP frames cycling over ``flows`` destination addresses."""
    frame_len = 14 + 20 + 8 + PAYLOAD
    frames = np.zeros((packets, frame_len), np.uint8)
    frames[:, 12:14] = [0x08, 0x00]
    ip = frames[:, 14:34]
    ip[:, 0], ip[:, 8], ip[:, 9] = 0x45, 64, 17
    ip[:, 2:4] = np.frombuffer(struct.pack(">H", 20 + 8 + PAYLOAD), np.uint8)
    flow = np.arange(packets) % flows
    ip[:, 12:16] = [10, 0, 0, 1]
    ip[:, 16], ip[:, 17], ip[:, 18], ip[:, 19] = 10, (flow >> 16) & 255, (flow >> 8) & 255, flow & 255
    frames[:, 34:36] = [0x30, 0x39]
    frames[:, 36:38] = [0x01, 0xBB]
    frames[:, 38:40] = np.frombuffer(struct.pack(">H", 8 + PAYLOAD), np.uint8)
    frames[:, 42:] = np.random.default_rng(0).integers(0, 256, (packets, PAYLOAD), dtype=np.uint8)
    ts_us = np.arange(packets, dtype=np.int64) * 10
    header = np.zeros((packets, 4), "<u4")
    header[:, 0], header[:, 1], header[:, 2], header[:, 3] = ts_us // 10**6, ts_us % 10**6, frame_len, frame_len
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        out.write(np.concatenate([header.view(np.uint8), frames], axis=1).tobytes())


_CHILD = """
import resource, sys, time
from pathlib import Path
from etbert.dataset.prepare import PrepareConfig, prepare
start = time.perf_counter()
prepare(Path(sys.argv[1]), Path(sys.argv[2]), PrepareConfig(overwrite=True))
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def timed_prepare(capture: Path, output: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of `prepare` in a process of its own (which reports its own peak RSS)."""
    result = subprocess.run([sys.executable, "-c", _CHILD, str(capture), str(output)], capture_output=True,
                            text=True, check=True)
    seconds, rss = result.stdout.split()
    return float(seconds), float(rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packets", type=int, default=2_000_000)
    parser.add_argument("--flows", type=int, nargs="+", default=[2000, 200_000])
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)  # internal: write one capture and stop
    args = parser.parse_args()
    if args.write:
        round_robin_capture(args.write, args.flows[0], args.packets)
        return
    with tempfile.TemporaryDirectory() as tmp:
        for flows in args.flows:
            capture = Path(tmp) / f"rr-{flows}.pcap"
            # Written by a process of its own too: a child inherits its parent's memory high-water mark.
            subprocess.run([sys.executable, __file__, "--write", str(capture), "--packets", str(args.packets),
                            "--flows", str(flows)], check=True)
            timed_prepare(capture, Path(tmp) / "warm-up")  # compiles or loads the loops once
            seconds, rss = timed_prepare(capture, Path(tmp) / f"ds-{flows}")
            print(f"{args.packets:,} packets over {flows:,} concurrent flows: {seconds:5.2f} s, peak RSS {rss:5.0f} MB")


if __name__ == "__main__":
    main()
