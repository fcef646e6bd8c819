"""Throughput of `etbert prepare` beside a plain dpkt decode loop over the same captures.

    .venv/bin/python benchmarks/bench_prepare.py [CAPTURE_OR_FOLDER ...] [--repeat N] [--workers 1 2] [--files F]

Default input: the real captures in ../shared/data/ustc-tfc2016 (if present) and the bundled lab corpus.
Each input is first tiled N times into a larger pcap (timestamps shifted, so flows stay distinct in time),
written F times (default: one file per worker of the largest --workers, which share out the files), to
make the figures stable. Every figure is the best of --runs timings, after one untimed warm-up run of
each, so imports and first-call costs are not counted. Prints packets/s for dpkt, for `prepare`
per anonymisation policy and worker count, and the ratios.
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import time
from pathlib import Path

import dpkt

from etbert.capture.reader import iter_capture_files
from etbert.dataset.prepare import PrepareConfig, prepare

REPO = Path(__file__).resolve().parents[1]


def tiled_pcap(sources: list[Path], repeat: int, out: Path, first_copy: int = 0) -> int:
    """Write the Ethernet pcap records of ``sources`` ``repeat`` times into one file; returns the frame count.

    Each copy is shifted in time, and the IP TTLs (hop limits) of copy number c (counted from
    ``first_copy``) are XORed with c: TTL is neither anonymised nor masked, so up to 256 copies stay
    distinct flows rather than duplicates that `prepare` would drop before writing (real captures hold
    few duplicates, and writing them costs time).
    """
    frames = []
    for source in sources:
        with open(source, "rb") as handle:
            try:
                reader = dpkt.pcap.Reader(handle)
            except (ValueError, dpkt.dpkt.Error):  # not a pcap (key logs, manifests)
                continue
            if reader.datalink() != dpkt.pcap.DLT_EN10MB:
                continue
            frames += [(ts, buf, ttl_offset(buf)) for ts, buf in reader]
    span = (max(ts for ts, _, _ in frames) - min(ts for ts, _, _ in frames)) + 1000 if frames else 0
    with open(out, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=dpkt.pcap.DLT_EN10MB)
        for r in range(repeat):
            copy = (first_copy + r) & 0xFF
            for ts, buf, at in frames:
                if at is not None and copy:
                    buf = bytearray(buf)
                    buf[at] ^= copy
                writer.writepkt(bytes(buf), ts + r * span)
    return len(frames) * repeat


def ttl_offset(frame: bytes) -> int | None:
    """Where an Ethernet frame's IPv4 TTL or IPv6 hop limit is (after any VLAN tags), or None."""
    at, ethertype = 12, None
    while len(frame) >= at + 2:
        ethertype = int.from_bytes(frame[at : at + 2], "big")
        if ethertype not in (0x8100, 0x88A8):
            break
        at += 4
    offset = {0x0800: at + 2 + 8, 0x86DD: at + 2 + 7}.get(ethertype)
    return offset if offset is not None and offset < len(frame) else None


def dpkt_loop(path: Path) -> float:
    """The baseline: dpkt objects per packet (Ethernet, IP, TCP/UDP), as a typical script decodes."""
    start = time.perf_counter()
    with open(path, "rb") as handle:
        for _, buf in dpkt.pcap.Reader(handle):
            try:
                ip = dpkt.ethernet.Ethernet(buf).data
                if isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                    _ = ip.data
            except (dpkt.dpkt.UnpackError, struct.error):
                pass
    return time.perf_counter() - start


def prepare_time(path: Path, policy: str, workers: int, scratch: Path) -> float:
    start = time.perf_counter()
    prepare(path, scratch / f"ds-{policy}-{workers}", PrepareConfig(anonymize=policy, workers=workers, overwrite=True))
    return time.perf_counter() - start


def best_of(runs: int, timed) -> float:
    timed()  # warm-up
    return min(timed() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--runs", type=int, default=3, help="timings per figure; the best is reported")
    parser.add_argument("--files", type=int, help="tiled files per input (workers share out files)")
    args = parser.parse_args()
    inputs = args.inputs or [p for p in (REPO.parent / "shared" / "data" / "ustc-tfc2016", REPO / "data" / "lab-default")
                             if p.exists()]
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for source in inputs:
            captures = iter_capture_files(source)
            tiled = scratch / "tiled"
            tiled.mkdir(exist_ok=True)
            for old in tiled.iterdir():
                old.unlink()
            # workers share out files: by default one tiled file per worker
            files = args.files or max(args.workers)
            frames = sum(tiled_pcap(captures, args.repeat, tiled / f"part{i}.pcap", first_copy=i * args.repeat)
                         for i in range(files))
            baseline = best_of(args.runs, lambda: sum(dpkt_loop(p) for p in sorted(tiled.iterdir())))
            print(f"\n{source}  ({frames:,} frames, tiled x{args.repeat} x{files} files, "
                  f"best of {args.runs})")
            print(f"  dpkt decode loop            {frames / baseline:12,.0f} packets/s")
            for policy in ("none", "strict"):
                for workers in args.workers:
                    seconds = best_of(args.runs, lambda: prepare_time(tiled, policy, workers, scratch))
                    rate = frames / seconds
                    print(f"  prepare --anonymize {policy:6} --workers {workers}  {rate:12,.0f} packets/s"
                          f"  ({rate * baseline / frames:4.1f}x dpkt)")


if __name__ == "__main__":
    main()
