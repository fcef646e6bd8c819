"""Frames/s of each stage of `prepare` on its own, on one core: reading pcap and pcapng, decoding, metering,
and anonymising (strict) with the duplicate keys (the digest of each flow's masked form).

    taskset -c 0 .venv/bin/python benchmarks/bench_stages.py [CAPTURE] [--repeat 20] [--runs 3]

Default input: ../shared/data/ustc-tfc2016/Tinba.pcap (two packets a flow: the meter's worst case), tiled
--repeat times. Each figure is the best of --runs after a warm-up. The script uses only functions that
existed before the compiled loops, so the same file can time an older checkout (copy it there): where
anonymisation and the duplicate keys were two steps, it times both.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import dpkt
import numpy as np

from etbert.capture.frames import CaptureReport
from etbert.capture.reader import read_frames
from etbert.dataset import prepare
from etbert.flows.meter import FlowMeter
from etbert.packets.decode import decode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_prepare import tiled_pcap  # noqa: E402
from timing import timed_calls  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def as_pcapng(pcap: Path, out: Path) -> None:
    with open(pcap, "rb") as source, open(out, "wb") as target:
        writer = dpkt.pcapng.Writer(target, linktype=dpkt.pcap.DLT_EN10MB)
        for ts, buf in dpkt.pcap.Reader(source):
            writer.writepkt(buf, ts)


def anonymize_and_key(flows):
    """Strict anonymisation and the duplicate keys of one batch of flows, as `prepare` computes them."""
    if hasattr(prepare, "anonymize_and_key"):
        return prepare.anonymize_and_key(flows, "strict", 0)
    from etbert.dataset.anonymize import anonymize_batch, mask_identity_batch  # older checkouts: two steps

    pkt_bytes, l4, directions = flows.column("pkt_bytes"), flows.column("pkt_l4_offset"), flows.column("pkt_direction")
    seeds = flows.column("flow_index").to_numpy().astype(np.uint64)
    return anonymize_batch(pkt_bytes, l4, directions, "strict", seeds), \
        prepare._duplicate_keys(flows, mask_identity_batch(pkt_bytes, l4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("capture", nargs="?", type=Path,
                        default=REPO.parent / "shared" / "data" / "ustc-tfc2016" / "Tinba.pcap")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pcap, pcapng = Path(tmp) / "tiled.pcap", Path(tmp) / "tiled.pcapng"
        frames = tiled_pcap([args.capture], args.repeat, pcap)
        as_pcapng(pcap, pcapng)
        print(f"{args.capture.name} tiled x{args.repeat}: {frames:,} frames, best of {args.runs}")

        def read(path):
            return list(read_frames(path, CaptureReport(path=str(path))))

        batches = read(pcap)
        packets = [decode(batch) for batch in batches]

        def meter():
            flow_meter = FlowMeter()
            out = [flow_meter.add(batch) for batch in packets] + [flow_meter.flush()]
            return [flows for flows in out if flows is not None and flows.num_rows]

        flows = meter()
        stages = {
            "pcap reader": lambda: read(pcap),
            "pcapng reader": lambda: read(pcapng),
            "packet decoder": lambda: [decode(batch) for batch in batches],
            "flow meter": meter,
            "anonymise + duplicate keys": lambda: [anonymize_and_key(f) for f in flows],
        }
        for name, timed in stages.items():
            print(f"  {name:26} {frames / min(timed_calls(timed, args.runs, warmups=1)) / 1e6:6.2f} M frames/s")


if __name__ == "__main__":
    main()
