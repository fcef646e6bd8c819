"""Human-readable summary of a prepared dataset (rich renderables; printing is the CLI's job)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

SPLITS = ("train", "val", "test")


def dataset_summary(manifest: dict) -> Group:
    parts = [_header(manifest), _class_table(manifest), _totals_table(manifest)]
    warnings = _warnings(manifest)
    if warnings:
        parts.append(warnings)
    return Group(*parts)


def _header(manifest: dict) -> Text:
    text = Text()
    text.append("split: ", style="bold")
    text.append(f"{manifest['split']}  ")
    text.append("anonymisation: ", style="bold")
    text.append(f"{manifest['anonymize']}  ")
    text.append("labels: ", style="bold")
    text.append(str(manifest["parameters"]["labels"]))
    return text


def _class_table(manifest: dict) -> Table:
    table = Table(title="Flows per class and split", title_justify="left")
    table.add_column("class")
    for split in SPLITS:
        table.add_column(split, justify="right")
    table.add_column("total", justify="right")
    counts = manifest["counts"]
    for label in sorted(counts):
        row = counts[label]
        name = label if label else "(unlabelled)"
        table.add_row(name, *(str(row.get(s, 0)) for s in SPLITS), str(sum(row.values())))
    return table


def _totals_table(manifest: dict) -> Table:
    totals = manifest["totals"]
    table = Table(title="Totals", title_justify="left", show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    captures = manifest["captures"]
    table.add_row("captures read", str(len(captures)))
    table.add_row("files that are not captures", str(len(manifest["not_captures"])))
    table.add_row("captures with problems", str(sum(1 for c in captures if c["problems"])))
    table.add_row("frames", str(totals.get("frames", 0)))
    table.add_row("packets in flows", str(totals.get("packets", 0)))
    for status, count in sorted(manifest["decoder_status"].items()):
        if status != "ok":
            table.add_row(f"  skipped: {status.replace('_', ' ')}", str(count))
    table.add_row("  later fragments without a first", str(totals.get("orphan_fragments", 0)))
    table.add_row("flows metered", str(totals.get("flows_metered", 0)))
    duplicates = manifest.get("duplicates") or {}
    table.add_row("  duplicates removed", str(duplicates.get("duplicates", 0)))
    limits = manifest.get("class_limits") or {}
    table.add_row("  dropped by class limits", str(limits.get("removed", 0)))
    table.add_row("flows in dataset", str(totals.get("flows", 0)))
    table.add_row("  unlabelled", str(totals.get("unlabelled_flows", 0)))
    return table


def _warnings(manifest: dict) -> Text | None:
    lines = []
    for label, share in manifest.get("degenerate_classes", {}).items():
        lines.append(
            f"class {label or '(unlabelled)'}: {share:.0%} of flows are single packets "
            "(degenerate flow structure: addresses may be anonymised per packet in the source)"
        )
    not_captures = manifest.get("not_captures", [])
    if not_captures:
        shown = ", ".join(not_captures[:4]) + (", ..." if len(not_captures) > 4 else "")
        lines.append(f"{len(not_captures)} files are not captures and were skipped: {shown}")
    for warning in (manifest.get("split_report") or {}).get("warnings", []):
        lines.append(str(warning))
    for problem in manifest.get("problems", [])[:20]:
        lines.append(problem)
    if len(manifest.get("problems", [])) > 20:
        lines.append(f"... and {len(manifest['problems']) - 20} more problems (see manifest.json)")
    if not lines:
        return None
    return Text("\n".join(f"warning: {line}" for line in lines), style="yellow")
