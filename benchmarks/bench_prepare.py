"""Throughput of `etbert prepare` beside a plain dpkt decode loop over the same captures.

    .venv/bin/python benchmarks/bench_prepare.py [CAPTURE_OR_FOLDER ...] [--repeat N] [--workers 1 2]

Default input: the real captures in ../shared/data/ustc-tfc2016 (if present) and the bundled lab corpus.
Each input is first tiled N times into one larger pcap (timestamps shifted, so flows stay distinct in time)
to make the figures stable, and every figure is the best of --runs timings (after one untimed warm-up
run of each, so imports and first-call costs are not counted). Prints packets/s for dpkt, for `prepare`
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


def tiled_pcap(sources: list[Path], repeat: int, out: Path) -> int:
    """Write the Ethernet pcap records of ``sources`` ``repeat`` times into one file; returns the frame count."""
    frames = []
    for source in sources:
        with open(source, "rb") as handle:
            try:
                reader = dpkt.pcap.Reader(handle)
            except (ValueError, dpkt.dpkt.Error):  # not a pcap (key logs, manifests)
                continue
            if reader.datalink() != dpkt.pcap.DLT_EN10MB:
                continue
            frames += [(ts, buf) for ts, buf in reader]
    span = (max(ts for ts, _ in frames) - min(ts for ts, _ in frames)) + 1000 if frames else 0
    with open(out, "wb") as handle:
        writer = dpkt.pcap.Writer(handle, linktype=dpkt.pcap.DLT_EN10MB)
        for r in range(repeat):
            for ts, buf in frames:
                writer.writepkt(buf, ts + r * span)
    return len(frames) * repeat


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
            # one tiled file per worker, so workers have captures to share out
            frames = sum(tiled_pcap(captures, args.repeat, tiled / f"part{i}.pcap") for i in range(max(args.workers)))
            baseline = best_of(args.runs, lambda: sum(dpkt_loop(p) for p in sorted(tiled.iterdir())))
            print(f"\n{source}  ({frames:,} frames, tiled x{args.repeat} x{max(args.workers)} files, "
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
