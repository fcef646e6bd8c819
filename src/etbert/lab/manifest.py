"""The manifest: what a lab run generated, with which software and parameters, written beside the captures."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
FORMAT = "etbert-lab/2"  # 2: several captures per class


@dataclass
class FlowOutcome:
    index: int
    params: dict[str, Any]
    error: str | None = None  # one line when the flow's client failed


@dataclass
class CaptureRecord:
    """One tcpdump session: the contiguous planned flows ``first_flow .. first_flow + flows - 1`` of its class."""

    path: str  # relative to the manifest's folder
    first_flow: int
    flows: int
    packets: int
    bytes: int
    connections: int  # distinct TCP/UDP 5-tuples in the file (what `etbert prepare` will see)
    max_ip_length: int
    dropped: int  # packets the kernel dropped before tcpdump saw them


@dataclass
class ClassRecord:
    name: str
    description: str
    keylog: str | None  # SSLKEYLOGFILE secrets of all its captures, relative; None when the class writes none
    software: dict[str, str]
    flows_planned: int
    flows_failed: int
    seconds: float
    captures: list[CaptureRecord] = field(default_factory=list)
    flows: list[FlowOutcome] = field(default_factory=list)

    # Class totals, summed over its captures.
    @property
    def packets(self) -> int:
        return sum(capture.packets for capture in self.captures)

    @property
    def bytes(self) -> int:
        return sum(capture.bytes for capture in self.captures)

    @property
    def connections(self) -> int:
        return sum(capture.connections for capture in self.captures)


@dataclass
class Manifest:
    seed: int
    flows_per_class: int
    captures_per_class: int
    size_scale: float
    netem: str | None
    addresses: dict[str, Any]
    host: dict[str, str]
    classes: list[ClassRecord] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # class -> why it did not run here
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"not an etbert lab manifest (format {data.get('format')!r}, expected {FORMAT!r})")
        classes = [
            ClassRecord(**{**c, "captures": [CaptureRecord(**k) for k in c["captures"]], "flows": [FlowOutcome(**f) for f in c["flows"]]})
            for c in data.pop("classes")
        ]
        return cls(**data, classes=classes)

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST_NAME
        partial = path.with_suffix(".partial")
        partial.write_text(self.to_json())
        partial.replace(path)
        return path


def read_manifest(folder: Path) -> Manifest:
    return Manifest.from_json((folder / MANIFEST_NAME).read_text())
