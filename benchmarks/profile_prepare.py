"""Where `prepare`'s time goes, step by step, and what Parquet compression costs.

    taskset -c 0 .venv/bin/python benchmarks/profile_prepare.py [CAPTURE_OR_FOLDER] [--repeat N] [--anonymize P]
        [--files F --workers W]

Default input: ../shared/data/ustc-tfc2016, tiled five times with distinct copies (as bench_prepare.py
does), into one file (or F files, each with copies of their own). Runs `prepare` several times, timing
its steps by wrapping the functions that do them, and prints the steps of the fastest run in
milliseconds and as shares of the total (steps nest: "read" is part of "pass one", "write" of "pass
two"). With W workers, the steps inside worker processes (read to anonymise, the writing inside "write")
are not timed one by one: only their wall time in this process is. Then writes the dataset's flow table
again under several compressions, and reads it back.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
from bench_prepare import tiled_pcap

import etbert.dataset.prepare as prepare_module
import etbert.flows.meter as meter_module
from etbert.capture.reader import iter_capture_files
from etbert.dataset.layout import read_flows
from etbert.dataset.prepare import PrepareConfig

REPO = Path(__file__).resolve().parents[1]

# (module or class, function name, step name); nested steps are timed inside their parents
STEPS = [
    (prepare_module, "_meter_all", "pass one (read to anonymise)"),
    (prepare_module, "read_frames", "read"),
    (prepare_module, "decode", "decode"),
    (meter_module.FlowMeter, "_meter", "meter: packet loop and kept packets"),
    (meter_module.FlowMeter, "_emit", "meter: flow records"),
    (prepare_module, "anonymize_and_key", "anonymise + duplicate keys"),
    (prepare_module, "_finish", "pass two (all below)"),
    (prepare_module, "duplicate_mask", "  duplicates"),
    (prepare_module, "split_indices", "  splits"),
    (prepare_module, "_write_flow_files", "  write Parquet"),
    (prepare_module, "build_manifest", "  manifest"),
]


def timed_steps(totals: Counter) -> None:
    for owner, name, step in STEPS:
        function = getattr(owner, name)
        if name == "read_frames":  # a generator: time each batch it yields
            def wrapper(*args, _function=function, _step=step, **kwargs):
                batches = _function(*args, **kwargs)
                while True:
                    start = time.perf_counter()
                    batch = next(batches, None)
                    totals[_step] += time.perf_counter() - start
                    if batch is None:
                        return
                    yield batch
        else:
            def wrapper(*args, _function=function, _step=step, **kwargs):
                start = time.perf_counter()
                try:
                    return _function(*args, **kwargs)
                finally:
                    totals[_step] += time.perf_counter() - start
        setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", type=Path, default=REPO.parent / "shared" / "data" / "ustc-tfc2016")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--anonymize", default="strict")
    parser.add_argument("--files", type=int, default=1, help="tiled files, each with distinct copies")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    totals: Counter = Counter()
    timed_steps(totals)
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        (scratch / "in").mkdir()
        frames = sum(tiled_pcap(iter_capture_files(args.input), args.repeat, scratch / "in" / f"tiled-{i}.pcap",
                                first_copy=i * args.repeat) for i in range(args.files))
        config = PrepareConfig(anonymize=args.anonymize, workers=args.workers, overwrite=True)
        best = None
        for _ in range(args.runs + 1):  # the first run is a warm-up
            totals.clear()
            start = time.perf_counter()
            manifest = prepare_module.prepare(scratch / "in", scratch / "ds", config)
            elapsed = time.perf_counter() - start
            if best is None or elapsed < best[0]:
                best = (elapsed, dict(totals))
        elapsed, steps = best
        flows = manifest["totals"]["flows"]
        print(f"{args.input} tiled x{args.repeat} x{args.files} files: {frames:,} frames, {flows:,} flows written, "
              f"--anonymize {args.anonymize}, --workers {args.workers}, best of {args.runs}")
        print(f"  {'prepare, in all':36} {elapsed * 1e3:8.1f} ms")
        for _, _, step in STEPS:
            print(f"  {step:36} {steps.get(step, 0) * 1e3:8.1f} ms  {steps.get(step, 0) / elapsed:6.1%}")

        table = read_flows(scratch / "ds")
        print(f"\nWriting the same {table.num_rows:,} flows again, and reading them back (best of 3 writes, 5 reads):")
        options = prepare_module.FLOW_FILE_OPTIONS
        codecs = {  # the other options as prepare's, at each codec's default level
            "as prepare writes: zstd -1 for the packet bytes, lz4 for the rest": {},
            "zstd": {"compression": "zstd", "compression_level": None},
            "lz4": {"compression": "lz4", "compression_level": None},
            "none": {"compression": "none", "compression_level": None},
        }
        writes = {}
        for name, codec in codecs.items():
            path = scratch / f"flows-{len(writes)}.parquet"
            writes[name] = path, min(_timed(lambda: pq.write_table(table, path, **{**options, **codec}))
                                     for _ in range(3))
        for name, (path, write) in writes.items():  # reads after all writes: a read just after its write is slower
            read = min(_timed(lambda: pq.read_table(path, use_threads=False)) for _ in range(5))
            print(f"  {name:68} write {write * 1e3:6.1f} ms  read {read * 1e3:6.1f} ms  "
                  f"{os.path.getsize(path) / 1e6:6.2f} MB")
        packet_bytes = table.select(["pkt_bytes"])
        seconds = min(_timed(lambda: pq.write_table(packet_bytes, scratch / "bytes.parquet", compression="zstd"))
                      for _ in range(3))
        print(f"  the packet bytes alone, zstd: {seconds * 1e3:.1f} ms")


def _timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
