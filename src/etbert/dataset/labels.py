"""Label sources: which class a capture, or one flow of it, belongs to.

``load_label_source(spec, input_root, captures)`` turns the ``--labels`` option into a `LabelSource`:
  None            folders when some capture sits in a subfolder of the input folder, else no labels
  "folders"       root/<class>/**/<capture> (ISCX / USTC-TFC layout); captures directly in root: none
  "stem"          the capture's file name without its extensions (USTC-TFC2016: Facetime.pcap)
  path to a CSV   capture,label (one label per capture) or capture,proto,src,sport,dst,dport,label
                  (one per flow, either direction), told apart by the header row

Captures are named as `capture_name` names them: the path relative to the input root, in POSIX form.
A CSV's capture column may hold that relative path or just the file name (when it is unambiguous).
"""

from __future__ import annotations

import csv
import functools
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from etbert.protocols import tcp, udp

CAPTURE_COLUMNS = ("capture", "label")
FLOW_COLUMNS = ("capture", "proto", "src", "sport", "dst", "dport", "label")
# ICMP names are accepted so tools' output loads whole, though only TCP/UDP flows are metered.
PROTOCOL_NAMES = {"tcp": tcp.PROTOCOL, "udp": udp.PROTOCOL, "icmp": 1, "icmpv6": 58}  # IANA protocol numbers
MAX_PORT = 65535
MAX_PROTOCOL = 255
# Suffixes a capture file name may carry; "stem" strips them all ("x.pcap.gz" -> "x").
CAPTURE_SUFFIXES = frozenset({".pcap", ".pcapng", ".cap", ".dmp", ".gz", ".gzip"})


class LabelError(ValueError):
    """A label source that cannot be used: one line saying what is wrong and where."""


def capture_name(path: Path, root: Path) -> str:
    """How a capture is named in labels and datasets: its path below ``root`` (POSIX), else its file name."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name


@dataclass(frozen=True)
class LabelSource:
    """Labels per capture, optionally refined per flow. Picklable, so worker processes can share it."""

    kind: str  # "none", "folders", "stem", "capture CSV" or "flow CSV"
    capture_labels: dict[str, str] = field(default_factory=dict)  # capture name -> label
    flows: FlowLabeler | None = None
    origin: str = ""  # the CSV path, for reports
    unmatched: tuple[str, ...] = ()  # CSV capture values that named no input capture

    def for_capture(self, capture: str) -> str | None:
        return self.capture_labels.get(capture)

    def for_flow(
        self, capture: str, protocol: int, client_ip: str, client_port: int, server_ip: str, server_port: int
    ) -> str | None:
        if self.flows is not None:
            return self.flows.label_for(capture, protocol, client_ip, client_port, server_ip, server_port)
        return self.for_capture(capture)

    def describe(self) -> str:
        text = f"{self.kind} {self.origin}".strip()
        if self.flows is not None and self.flows.ambiguous:
            text += f" ({len(self.flows.ambiguous)} flow keys with conflicting labels left unlabelled)"
        if self.unmatched:
            text += f" ({len(self.unmatched)} CSV captures not in the input)"
        return text


@dataclass(frozen=True)
class FlowLabeler:
    """Flow labels keyed by capture and 5-tuple; a flow matches in either direction.

    Keys hold normalised addresses (`normalize_ip`); keys that rows labelled differently are in
    ``ambiguous`` and answer None rather than an arbitrary one of the labels.
    """

    labels: dict[tuple[str, int, str, int, str, int], str]
    ambiguous: frozenset[tuple[str, int, str, int, str, int]] = frozenset()

    def label_for(
        self, capture: str, protocol: int, client_ip: str, client_port: int, server_ip: str, server_port: int
    ) -> str | None:
        client, server = normalize_ip(client_ip), normalize_ip(server_ip)
        return self.labels.get(_flow_key(capture, protocol, client, client_port, server, server_port))


@functools.lru_cache(maxsize=65536)
def normalize_ip(text: str) -> str:
    """Canonical text of an address ("::ffff:10.0.0.1" and "10.0.0.1" alike -> "10.0.0.1");
    text that is not an address is returned unchanged (it then matches nothing)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return text
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def _flow_key(capture: str, protocol: int, ip_a: str, port_a: int, ip_b: str, port_b: int):
    """The same key for both directions: the endpoints in sorted order."""
    a, b = (ip_a, int(port_a)), (ip_b, int(port_b))
    (ip_1, port_1), (ip_2, port_2) = sorted((a, b))
    return capture, int(protocol), ip_1, port_1, ip_2, port_2


# ----- loading ---------------------------------------------------------------------------------------


def load_label_source(spec: str | None, input_root: Path, captures: list[Path]) -> LabelSource:
    """The label source ``spec`` names (see the module docstring), checked against the input's captures."""
    input_root = Path(input_root)
    if spec is None:
        folders = labels_from_folders(input_root, captures)
        if folders:
            return _per_capture("folders", folders, input_root)
        return LabelSource("none")
    if spec == "folders":
        folders = labels_from_folders(input_root, captures)
        if not folders:
            raise LabelError(f"--labels folders: no capture sits in a class subfolder of {input_root}")
        return _per_capture("folders", folders, input_root)
    if spec == "stem":
        return _per_capture("stem", {path: label_from_stem(path) for path in captures}, input_root)
    path = Path(spec)
    if not path.is_file():
        raise LabelError(f"label source {spec!r}: no such file (expected 'folders', 'stem' or a CSV path)")
    return load_label_csv(path, input_root, captures)


def labels_from_folders(root: Path, captures: list[Path]) -> dict[Path, str]:
    """Class = the first folder below ``root`` on the capture's path; files directly in ``root`` get none."""
    labels = {}
    for path in captures:
        try:
            parts = Path(path).relative_to(root).parts
        except ValueError:
            continue
        if len(parts) > 1:
            labels[path] = parts[0]
    return labels


def label_from_stem(path: Path) -> str:
    """The file name without its capture and compression suffixes ("Facetime.pcap" -> "Facetime",
    "x.pcap.gz" -> "x"); a name without known suffixes loses only its last one."""
    name = PurePosixPath(Path(path).name)
    if name.suffix.lower() not in CAPTURE_SUFFIXES:
        return name.stem
    while name.suffix.lower() in CAPTURE_SUFFIXES:
        name = PurePosixPath(name.stem)
    return str(name)


def _per_capture(kind: str, labels: dict[Path, str], root: Path) -> LabelSource:
    return LabelSource(kind, {capture_name(path, root): label for path, label in labels.items()})


def load_label_csv(path: Path, input_root: Path, captures: list[Path]) -> LabelSource:
    """A capture CSV or a flow CSV, decided by the header row."""
    header, rows = _read_csv(path)
    names = _CaptureNames(path, input_root, captures)
    if set(header) == set(CAPTURE_COLUMNS) and len(header) == len(CAPTURE_COLUMNS):
        return _capture_csv(path, rows, names)
    if set(header) == set(FLOW_COLUMNS) and len(header) == len(FLOW_COLUMNS):
        return _flow_csv(path, rows, names)
    raise LabelError(
        f"{path}: header has columns {', '.join(header) or '(none)'}; expected either "
        f"{','.join(CAPTURE_COLUMNS)} or {','.join(FLOW_COLUMNS)}"
    )


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header (lower case, stripped) and the non-blank rows with their line numbers."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            lines = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise LabelError(f"{path}: cannot read labels CSV: {error}") from error
    if not lines:
        raise LabelError(f"{path}: labels CSV is empty (expected a header row, then one row per label)")
    header = [column.strip().lower() for column in lines[0][1]]
    if len(lines) == 1:
        raise LabelError(f"{path}: labels CSV has a header but no rows")
    rows = []
    for number, values in lines[1:]:
        if len(values) != len(header):
            raise LabelError(f"{path}:{number}: {len(values)} fields, the header has {len(header)}")
        rows.append((number, {column: value.strip() for column, value in zip(header, values)}))
    return header, rows


class _CaptureNames:
    """Resolves a CSV's capture column to an input capture: relative path first, else unique file name."""

    def __init__(self, csv_path: Path, root: Path, captures: list[Path]):
        self.csv_path = csv_path
        self.relative = {capture_name(path, root) for path in captures}
        self.by_file_name: dict[str, list[str]] = {}
        for name in sorted(self.relative):
            self.by_file_name.setdefault(PurePosixPath(name).name, []).append(name)

    def resolve(self, value: str, line: int) -> str | None:
        value = value.replace("\\", "/").removeprefix("./")
        if value in self.relative:
            return value
        matches = self.by_file_name.get(PurePosixPath(value).name, [])
        if len(matches) > 1:
            raise LabelError(
                f"{self.csv_path}:{line}: capture {value!r} is ambiguous: it names {', '.join(matches)} "
                "(give the path relative to the input folder)"
            )
        return matches[0] if matches else None


def _capture_csv(path, rows, names: _CaptureNames) -> LabelSource:
    labels: dict[str, str] = {}
    unmatched = []
    for line, row in rows:
        label = _label(path, line, row)
        capture = names.resolve(row["capture"], line)
        if capture is None:
            unmatched.append(row["capture"])
        elif labels.setdefault(capture, label) != label:
            raise LabelError(f"{path}:{line}: capture {capture} labelled both {labels[capture]!r} and {label!r}")
    return LabelSource("capture CSV", labels, origin=str(path), unmatched=tuple(unmatched))


def _flow_csv(path, rows, names: _CaptureNames) -> LabelSource:
    labels: dict[tuple, str] = {}
    ambiguous = set()
    unmatched = []
    for line, row in rows:
        label = _label(path, line, row)
        capture = names.resolve(row["capture"], line)
        if capture is None:
            unmatched.append(row["capture"])
            continue
        key = _flow_key(
            capture,
            _protocol(path, line, row["proto"]),
            _address(path, line, row["src"]),
            _port(path, line, "sport", row["sport"]),
            _address(path, line, row["dst"]),
            _port(path, line, "dport", row["dport"]),
        )
        if labels.setdefault(key, label) != label:
            ambiguous.add(key)
    for key in ambiguous:
        del labels[key]
    return LabelSource("flow CSV", flows=FlowLabeler(labels, frozenset(ambiguous)), origin=str(path),
                       unmatched=tuple(sorted(set(unmatched))))


def _label(path, line: int, row: dict[str, str]) -> str:
    if not row["label"]:
        raise LabelError(f"{path}:{line}: empty label")
    return row["label"]


def _protocol(path, line: int, text: str) -> int:
    if _is_number(text) and int(text) <= MAX_PROTOCOL:
        return int(text)
    try:
        return PROTOCOL_NAMES[text.lower()]
    except KeyError:
        raise LabelError(
            f"{path}:{line}: unknown protocol {text!r} (a number 0-{MAX_PROTOCOL} or one of "
            f"{', '.join(PROTOCOL_NAMES)})"
        ) from None


def _port(path, line: int, column: str, text: str) -> int:
    if not (_is_number(text) and int(text) <= MAX_PORT):
        raise LabelError(f"{path}:{line}: {column} {text!r} is not a port number (0-{MAX_PORT})")
    return int(text)


def _address(path, line: int, text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise LabelError(f"{path}:{line}: {text!r} is not an IP address") from None
    return normalize_ip(text)


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()
