"""`prepare`: captures in, a labelled, anonymised, deduplicated and split flow dataset out.

Two passes keep memory bounded: pass one meters every capture (in parallel, one capture per worker)
into parts plus a small per-flow index (label, capture, start time, duplicate key); pass two decides
duplicates, class limits and splits on that index in this process, then the workers stream the parts
into one flow file each (a contiguous run of captures per worker). A part
stays in memory while the parts held so far fit in `PARTS_IN_MEMORY` bytes (one process only); beyond
that it is spilled to an Arrow IPC file in the staging folder, so memory stays bounded whatever the
size of the input.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etbert.capture.frames import CaptureReport
from etbert.capture.reader import iter_capture_files, read_frames
from etbert.compiled import compiled
from etbert.dataset.anonymize import POLICIES, anonymize_and_digest_batch, anonymize_batch
from etbert.dataset.digest import DIGEST
from etbert.dataset.labels import LabelSource, capture_name, load_label_source
from etbert.dataset.layout import DATASET_SCHEMA, FLOWS_DIR, MANIFEST_NAME, flow_file_name
from etbert.dataset.manifest import build_manifest, write_json
from etbert.dataset.split import (SPLIT_METHODS, SPLITS, Coded, apply_class_limits, coded, coded_splits, duplicate_mask,
                                  split_indices)
from etbert.flows.arrays import copy_range
from etbert.flows.meter import FlowMeter, MeterConfig, MeterCounters
from etbert.packets.decode import decode


@dataclass(frozen=True)
class PrepareConfig:
    meter: MeterConfig = field(default_factory=MeterConfig)
    labels: str | None = None  # None (auto), "folders", "stem" or a CSV path
    split: str = "flow"
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    anonymize: str = "strict"
    seed: int = 0
    max_per_class: int | None = None
    min_per_class: int | None = None
    workers: int = 1
    overwrite: bool = False

    def __post_init__(self):
        if self.anonymize not in POLICIES:
            raise ValueError(f"unknown anonymisation policy {self.anonymize!r}; choose one of {', '.join(POLICIES)}")
        if self.split not in SPLIT_METHODS:
            raise ValueError(f"unknown split {self.split!r}; choose one of {', '.join(SPLIT_METHODS)}")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")


@dataclass
class CaptureResult:
    """What pass one learnt from one capture: its report, counters and the index of its flows."""

    capture: str
    report: CaptureReport
    counters: MeterCounters
    part: pa.Table | str | None  # the flows: in memory, or the path of an Arrow IPC file
    # One entry per flow, in the order of the part:
    labels: Coded  # "" where unlabelled
    start_times: np.ndarray  # float64
    duplicate_keys: np.ndarray  # 16-byte digests (void)
    packet_counts: np.ndarray  # int64


class PrepareError(Exception):
    """A usage problem that stops `prepare` before it writes anything (bad path, existing output...)."""


def prepare(
    input_path: Path,
    output: Path,
    config: PrepareConfig,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Prepare a dataset from a capture file or folder; returns the manifest (also written beside the data).

    ``on_progress(done_bytes, total_bytes)`` is called as captures are read.
    """
    input_path = Path(input_path)
    output = Path(output)
    if not input_path.exists():
        raise PrepareError(f"input {input_path} does not exist")
    if output.exists() and not config.overwrite:
        raise PrepareError(f"output {output} already exists (use --overwrite to replace it)")
    captures = iter_capture_files(input_path)
    if not captures:
        raise PrepareError(f"no files found under {input_path}")
    root = input_path if input_path.is_dir() else input_path.parent
    label_source = load_label_source(config.labels, root, captures)

    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))
    try:
        with _worker_pool(config.workers, staging, config) as pool:
            results = _meter_all(captures, root, staging, config, label_source, on_progress, pool)
            if not any(result.report.is_capture for result in results):
                problems = "; ".join(f"{r.capture}: {p}" for r in results for p in r.report.problems[:1])
                raise PrepareError(f"no pcap or pcapng capture in {input_path} ({problems})")
            manifest = _finish(results, staging, config, input_path, label_source, pool)
        _publish(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


# ----- pass one: meter captures ---------------------------------------------------------------------


PARTS_IN_MEMORY = 256 * 2**20  # bytes of parts kept in memory, over all captures, before spilling to disk


@contextmanager
def _worker_pool(workers: int, staging: Path, config: PrepareConfig) -> Iterator[ProcessPoolExecutor | None]:
    """The processes that meter captures and write flow files; None for one worker (all in this process).

    This process meters a tiny capture first, so the workers it forks inherit the compiled loops: loading
    them from numba's cache costs each process about 0.3 s, and two processes compiling one function at
    once can corrupt that cache (numba/numba#4807) on a first run.
    """
    if workers == 1:
        yield None
        return
    _meter_warm_up_capture(staging, config)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield pool


def _meter_warm_up_capture(staging: Path, config: PrepareConfig) -> None:
    path = staging / "warm-up.pcap"
    path.write_bytes(warm_up_capture())
    meter_capture(path, path.name, staging / "warm-up.arrow", config, LabelSource(kind="none"))
    flow_ids(path.name, np.zeros(1, dtype=np.int64))  # pass two's compiled loop, which workers run too
    path.unlink()
    (staging / "warm-up.arrow").unlink(missing_ok=True)


def warm_up_capture() -> bytes:
    """An Ethernet pcap of a TCP handshake's first two packets and a UDP datagram: two flows, both directions."""
    def frame(src: int, dst: int, protocol: int, transport: bytes) -> bytes:
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(transport), 1, 0, 64, protocol, 0,
                         bytes([10, 0, 0, src]), bytes([10, 0, 0, dst]))
        return bytes(6) + bytes(6) + b"\x08\x00" + ip + transport

    tcp = struct.Struct(">HHIIBBHHH")
    frames = [
        frame(1, 2, 6, tcp.pack(40000, 443, 1, 0, 5 << 4, 0x02, 65535, 0, 0)),  # SYN
        frame(2, 1, 6, tcp.pack(443, 40000, 7, 2, 5 << 4, 0x12, 65535, 0, 0)),  # SYN-ACK
        frame(1, 2, 17, struct.pack(">HHHH", 50000, 53, 12, 0) + b"warm"),
    ]
    records = b"".join(struct.pack("<IIII", 1, i, len(f), len(f)) + f for i, f in enumerate(frames))
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + records


def _meter_all(captures, root, staging, config, label_source, on_progress, pool) -> list[CaptureResult]:
    sizes = [path.stat().st_size for path in captures]
    total = sum(sizes)
    done = 0
    jobs = [(path, capture_name(path, root), staging / "parts" / f"{i:06d}.arrow") for i, path in enumerate(captures)]
    (staging / "parts").mkdir()
    results: list[CaptureResult] = []
    if pool is None:
        memory_left = PARTS_IN_MEMORY
        for (path, name, part), size in zip(jobs, sizes):
            def progress(read_bytes, base=done):
                if on_progress:
                    on_progress(base + read_bytes, total)

            results.append(meter_capture(path, name, part, config, label_source, progress, memory_left))
            if isinstance(results[-1].part, pa.Table):
                memory_left -= results[-1].part.nbytes
            done += size
            if on_progress:
                on_progress(done, total)
        return results
    # Parts from worker processes always go through files: sending them back costs as much as writing them.
    futures = [pool.submit(meter_capture, path, name, part, config, label_source) for path, name, part in jobs]
    for future, size in zip(futures, sizes):
        results.append(future.result())
        done += size
        if on_progress:
            on_progress(done, total)
    return results


def meter_capture(
    path: Path,
    name: str,
    part: Path,
    config: PrepareConfig,
    label_source: LabelSource,
    on_bytes: Callable[[int], None] | None = None,
    memory_budget: int = 0,
) -> CaptureResult:
    """Read, decode and meter one capture; label and anonymise its flows into one part.

    The part stays in memory while it fits in ``memory_budget`` bytes, and is otherwise written to the
    Arrow IPC file ``part``: a scratch file read once by pass two (uncompressed IPC costs a fraction of
    Parquet to write, and pass two maps it instead of decoding it).
    """
    report = CaptureReport(path=name)
    meter = FlowMeter(config.meter, capture=name)
    seed = capture_seed(config.seed, name)
    held: list[pa.Table] = []  # tables not yet written
    held_bytes = 0
    writer = None
    labels, start_times, keys, packet_counts = [], [], [], []
    for flows in metered_flows(path, report, meter, on_bytes):
        table, flow_labels, flow_keys = _label_and_anonymize(flows, config.anonymize, seed, label_source, name)
        held.append(table)
        held_bytes += table.nbytes
        if writer is None and held_bytes > memory_budget:
            writer = pa.ipc.new_file(part, table.schema)
        if writer is not None:
            for table in held:
                writer.write_table(table)
            held = []
        labels.append(flow_labels)
        keys.append(flow_keys)
        start_times.append(flows.column("start_time").to_numpy())
        packet_counts.append(pc.add(flows.column("fwd_packets"), flows.column("bwd_packets")).to_numpy())
    if writer is not None:
        writer.close()
    return CaptureResult(
        capture=name,
        report=report,
        counters=meter.counters,
        part=str(part) if writer is not None else pa.concat_tables(held) if held else None,
        labels=Coded.concatenate(labels) if labels else coded([]),
        start_times=np.concatenate(start_times) if start_times else np.zeros(0),
        duplicate_keys=np.concatenate(keys) if keys else np.zeros(0, dtype=DIGEST),
        packet_counts=np.concatenate(packet_counts).astype(np.int64) if packet_counts else np.zeros(0, np.int64),
    )


def metered_flows(path: Path, report: CaptureReport, meter: FlowMeter,
                  on_bytes: Callable[[int], None] | None = None) -> Iterator[pa.RecordBatch]:
    """The flows of one capture as the meter finishes them (raw bytes: not yet anonymised)."""
    for frames in read_frames(path, report):
        flows = meter.add(decode(frames))
        if flows is not None and flows.num_rows:
            yield flows
        if on_bytes:
            on_bytes(report.bytes)
    flows = meter.flush()
    if flows is not None and flows.num_rows:
        yield flows


def anonymized_packets(flows: pa.RecordBatch, policy: str, seed: int) -> pa.ListArray:
    """The flows' packet bytes under ``policy``; each flow draws from the capture's seed plus its index."""
    return anonymize_batch(flows.column("pkt_bytes"), flows.column("pkt_l4_offset"), flows.column("pkt_direction"),
                           policy, _flow_seeds(flows, seed))


def _flow_seeds(flows: pa.RecordBatch, seed: int) -> np.ndarray:
    return seed + flows.column("flow_index").to_numpy().astype(np.uint64)


def _label_and_anonymize(flows: pa.RecordBatch, policy, seed, label_source: LabelSource, capture: str):
    """Attach labels, replace packet bytes by their anonymised form, and compute duplicate keys."""
    labels = _flow_labels(flows, label_source, capture)
    anonymized, keys = anonymize_and_key(flows, policy, seed)
    table = pa.Table.from_batches([flows])
    table = table.set_column(table.schema.get_field_index("pkt_bytes"), "pkt_bytes", anonymized)
    table = table.append_column("label", pa.array(labels.names, pa.string()).take(labels.codes))
    return table, labels, keys


def _flow_labels(flows: pa.RecordBatch, label_source: LabelSource, capture: str) -> Coded:
    if label_source.flows is None:  # one label per capture
        return Coded([label_source.for_capture(capture) or ""], np.zeros(flows.num_rows, dtype=np.int64))
    columns = [flows.column(name).to_pylist() for name in ("protocol", "client_ip", "client_port", "server_ip",
                                                            "server_port")]
    return coded([label_source.for_flow(capture, *row) or "" for row in zip(*columns)])


def anonymize_and_key(flows: pa.RecordBatch, policy: str, seed: int) -> tuple[pa.ListArray, np.ndarray]:
    """The flows' packet bytes under ``policy``, and each flow's duplicate key.

    The key is an identity-free fingerprint of the flow sample: what a model sees, minus addresses,
    ports and counters. Per flow, the 128-bit digest of `etbert.dataset.digest` (XXH64 under two seeds)
    of: protocol (1 byte), fwd/bwd packets and bytes (8 bytes little-endian each), then per packet its
    direction (1 byte), stored length (4 bytes little-endian) and `mask_identity` bytes.
    """
    flow_heads = np.zeros((flows.num_rows, 1 + 4 * 8), dtype=np.uint8)
    flow_heads[:, 0] = flows.column("protocol").to_numpy()
    counters = np.stack([flows.column(name).to_numpy().astype("<i8")
                         for name in ("fwd_packets", "bwd_packets", "fwd_bytes", "bwd_bytes")], axis=1)
    flow_heads[:, 1:] = counters.view(np.uint8)
    packets = flows.column("pkt_bytes").flatten()
    packet_heads = np.zeros((len(packets), 1 + 4), dtype=np.uint8)
    packet_heads[:, 0] = flows.column("pkt_direction").flatten().to_numpy().astype(np.uint8)
    packet_heads[:, 1:] = pc.binary_length(packets).to_numpy(zero_copy_only=False).astype("<u4")[:, None].view(np.uint8)
    return anonymize_and_digest_batch(flows.column("pkt_bytes"), flows.column("pkt_l4_offset"),
                                      flows.column("pkt_direction"), policy, _flow_seeds(flows, seed), flow_heads,
                                      packet_heads)


def capture_seed(seed: int, name: str) -> int:
    """A per-capture seed that does not depend on the order or the worker that handles the capture."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=4).digest(), "little") << 20


# ----- pass two: decide and write -------------------------------------------------------------------

_WRITE_SLICE_ROWS = 65536  # rows per write into a flow file: each write becomes one Parquet row group


def _finish(results: list[CaptureResult], staging: Path, config: PrepareConfig, input_path, label_source,
            pool: ProcessPoolExecutor | None) -> dict:
    labels = Coded.concatenate([r.labels for r in results])
    capture_of_result = coded([r.capture for r in results])
    captures = Coded(capture_of_result.names, np.repeat(capture_of_result.codes, [len(r.labels) for r in results]))
    start_times = np.concatenate([np.zeros(0)] + [r.start_times for r in results])
    keys = np.concatenate([np.zeros(0, dtype=DIGEST)] + [r.duplicate_keys for r in results])
    unlabelled = labels.codes == labels.code_of("")

    duplicates, duplicate_report = duplicate_mask(keys, labels)
    keep = ~duplicates
    labelled = keep & ~unlabelled
    limit_keep, limit_report = apply_class_limits(labels[labelled], config.max_per_class, config.min_per_class,
                                                  config.seed)
    keep[np.flatnonzero(labelled)[~limit_keep]] = False

    # Unlabelled flows (kept for pre-training) are split among themselves, so they never shift class strata.
    split_codes = np.full(len(labels), -1, dtype=np.int8)  # index into SPLITS; -1 where not kept
    split_report = None
    for rows in (keep & ~unlabelled, keep & unlabelled):
        if rows.any():
            split_codes[rows], report = split_indices(
                labels[rows], captures[rows], start_times[rows], config.split, config.fractions, config.seed
            )
            split_report = split_report or report
    _write_flow_files(results, staging / FLOWS_DIR, keep, split_codes, config.workers, pool)

    manifest = build_manifest(
        config=config,
        input_path=input_path,
        label_source=label_source,
        results=results,
        metered_labels=labels,
        labels=labels[keep],
        splits=coded_splits(split_codes[keep]),
        duplicate_report=duplicate_report,
        limit_report=limit_report,
        split_report=split_report,
    )
    shutil.rmtree(staging / "parts", ignore_errors=True)
    write_json(staging / MANIFEST_NAME, manifest)  # written last: its presence marks a complete dataset
    return manifest


def _write_flow_files(results: list[CaptureResult], folder: Path, keep: np.ndarray, split_codes: np.ndarray,
                      workers: int, pool: ProcessPoolExecutor | None) -> None:
    """Write the kept flows into one file per worker (at least one file, even when no flow is kept).

    Each worker takes a contiguous run of captures holding about an equal share of the flows, so reading
    the files in name order gives the flows in capture order, whatever the number of workers.
    """
    folder.mkdir()
    parts = [(r.capture, r.part, len(r.labels)) for r in results if r.part is not None]
    groups = _contiguous_groups([n for _, _, n in parts], workers)
    jobs = []
    row = 0
    for number, (first, last) in enumerate(groups or [(0, 0)]):
        rows = sum(n for _, _, n in parts[first:last])
        jobs.append((folder / flow_file_name(number), [(name, part) for name, part, _ in parts[first:last]],
                     keep[row : row + rows], split_codes[row : row + rows]))
        row += rows
    if pool is None:
        for job in jobs:
            write_flow_file(*job)
    else:
        for future in [pool.submit(write_flow_file, *job) for job in jobs]:
            future.result()


def _contiguous_groups(sizes: list[int], groups: int) -> list[tuple[int, int]]:
    """min(groups, len(sizes)) runs [first, last) of consecutive items, each near an equal share of the sum."""
    groups = min(groups, len(sizes))
    bounds = [0]
    total, done = sum(sizes), 0
    for i, size in enumerate(sizes[:-1]):
        done += size
        items_left = len(sizes) - i - 1
        if len(bounds) < groups and (done * groups >= total * len(bounds) or items_left <= groups - len(bounds)):
            bounds.append(i + 1)
    bounds.append(len(sizes))
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def write_flow_file(path: Path, parts: list[tuple[str, pa.Table | str]], keep: np.ndarray,
                    split_codes: np.ndarray) -> None:
    """Stream parts (capture name, flows), slice by slice, into one flow file with each kept flow's split and
    id (bounded memory: a spilled part is mapped, not read). Spilled parts are deleted once written, here,
    so that workers delete theirs in parallel."""
    writer = pq.ParquetWriter(path, DATASET_SCHEMA, **FLOW_FILE_OPTIONS)
    split_names = pa.array(SPLITS, pa.string())
    row = 0
    for capture, part in parts:
        with _opened(part) as table_of_part:
            for start in range(0, table_of_part.num_rows, _WRITE_SLICE_ROWS):
                table = table_of_part.slice(start, _WRITE_SLICE_ROWS)
                n = table.num_rows
                mask = keep[row : row + n]
                if not mask.all():  # filtering copies every column, the packet bytes included
                    table = table.filter(pa.array(mask))
                table = table.append_column("split", split_names.take(pa.array(split_codes[row : row + n][mask])))
                row += n
                table = table.append_column("flow_id", flow_ids(capture, table.column("flow_index").to_numpy()))
                writer.write_table(table.cast(DATASET_SCHEMA))
        if isinstance(part, str):
            os.remove(part)
    writer.close()


def flow_ids(capture: str, flow_index: np.ndarray) -> pa.StringArray:
    """Each flow's id in the dataset: "<capture>#<flow_index>" (formatted by a compiled loop: Arrow's
    cast and join took about 1% of `prepare` on captures of short flows)."""
    prefix = np.frombuffer(f"{capture}#".encode(), dtype=np.uint8)
    index = np.array(flow_index, dtype=np.int64)  # a writable copy: one compiled variant whatever the caller has
    if len(index) and index.min() < 0:
        raise ValueError("flow indices are never negative")
    data = np.empty(len(index) * (len(prefix) + _MAX_DIGITS), dtype=np.uint8)
    if len(data) >= 2**31:
        raise ValueError("too many flow ids for one string array")
    offsets = np.empty(len(index) + 1, dtype=np.int64)
    _write_flow_ids(prefix, index, data, offsets)
    return pa.StringArray.from_buffers(len(index), pa.py_buffer(offsets.astype(np.int32)),
                                       pa.py_buffer(data[: offsets[-1]]))


_MAX_DIGITS = len(str(np.iinfo(np.int64).max))


@compiled
def _write_flow_ids(prefix, index, data, offsets):
    # Unsigned arithmetic throughout: Python's signed floor division and numba's negative-index checks
    # made this loop several times slower.
    at = np.uint64(0)
    ten = np.uint64(10)
    offsets[0] = 0
    for i in range(len(index)):
        copy_range(prefix, 0, data, at, len(prefix))
        at += np.uint64(len(prefix))
        value = np.uint64(index[i])
        digits = np.uint64(1)
        rest = value // ten
        while rest:
            digits += np.uint64(1)
            rest //= ten
        for k in range(digits):
            data[at + digits - np.uint64(1) - np.uint64(k)] = np.uint8(np.uint64(48) + value % ten)
            value //= ten
        at += digits
        offsets[i + 1] = at


def _parquet_path(field: pa.Field) -> str:
    """The Parquet column of a field: a list's values are its "list.element" child."""
    return f"{field.name}.list.element" if pa.types.is_list(field.type) else field.name


def _values_type(field: pa.Field) -> pa.DataType:
    return field.type.value_type if pa.types.is_list(field.type) else field.type


# Dictionary encoding only where values repeat (on packet bytes it is tried and dropped, at a cost).
# zstd for the packet bytes, the bulk of a dataset, at its fast level -1; lz4 for the other columns,
# mostly small integers and floats, which zstd shrinks further but slowly. Integers are delta-coded, which
# costs no time and makes lz4's output smaller. Min/max statistics only for the columns a reader selects
# rows by; on the others they cost time and no reader uses them. On the tiled USTC mix, one core,
# all-zstd at level 1 with statistics everywhere wrote in 81 ms and read in 39 ms to 6.3 MB (a one-off
# comparison); these options write in about 66 ms and read in 31 ms to 8.2 MB (benchmarks/profile_prepare.py).
_DICTIONARY_COLUMNS = ["capture", "linktype", "ip_version", "protocol", "end_reason", "label", "split"]
_PACKET_BYTES = _parquet_path(DATASET_SCHEMA.field("pkt_bytes"))
FLOW_FILE_OPTIONS = {
    "use_dictionary": _DICTIONARY_COLUMNS,
    "write_statistics": ["capture", "label", "split", "protocol", "start_time", "duration"],
    "compression": {_parquet_path(f): "zstd" if f.name == "pkt_bytes" else "lz4" for f in DATASET_SCHEMA},
    "compression_level": {_PACKET_BYTES: -1},
    "column_encoding": {_parquet_path(f): "DELTA_BINARY_PACKED" for f in DATASET_SCHEMA
                        if pa.types.is_integer(_values_type(f)) and f.name not in _DICTIONARY_COLUMNS},
}


@contextmanager
def _opened(part: pa.Table | str) -> Iterator[pa.Table]:
    if isinstance(part, pa.Table):
        yield part
        return
    with pa.memory_map(part) as source:
        yield pa.ipc.open_file(source).read_all()  # mapped, not copied: pages load as slices are written


def _publish(staging: Path, output: Path) -> None:
    """Move the finished dataset into place; an existing one is replaced only after the new one is complete."""
    if output.exists():
        retired = output.with_name(f".{output.name}.old-{os.getpid()}")
        output.rename(retired)
        staging.rename(output)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        staging.rename(output)
