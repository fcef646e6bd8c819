"""One self-contained HTML page over one or more runs: inline CSS, charts as base64 PNG, no scripts.

Every figure on the page stands next to the split type and the anonymisation policy it was measured
under; a run that was never evaluated gets a note saying how to evaluate it, not a gap or a crash.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from etbert import __version__
from etbert.dataset.layout import DatasetError, read_manifest
from etbert.dataset.split import SPLITS
from etbert.evaluation.metrics import HEADLINE
from etbert.evaluation.runs import manifest_sha256, now
from etbert.report import plots
from etbert.report.compare import PAPER_COLUMNS, RunResults, load_results, mixed_protocols, rows_of

SPLIT_MEANING = {
    "flow": "flows are dealt to train/val/test one by one, so flows of one capture or session can sit in "
            "both train and test: scores are optimistic for traffic from unseen captures",
    "capture": "each capture file lies whole in one split: test traffic comes from captures never seen in training",
    "time": "within each class the earliest flows train and the latest test: no test flow started before "
            "a training flow of its class",
}
ANONYMIZE_MEANING = {
    "none": "packet bytes unchanged: addresses, ports and other identifiers are visible to the models",
    "seed-004": "IP addresses, IP identification and ports replaced by random bytes (checksums kept)",
    "strict": "seed-004 plus checksums, TCP timestamps and IPv6 flow labels zeroed, TCP sequence numbers "
              "made relative per flow",
}
HEADINGS = {"accuracy": "accuracy", "macro_precision": "macro precision", "macro_recall": "macro recall",
            "macro_f1": "macro F1", "weighted_f1": "weighted F1"}

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
.protocol { background: #eef4fb; border-left: 4px solid #4a7bb7; padding: 0.4em 0.8em; margin: 0.6em 0; }
.warning { background: #fff4e0; border-left: 4px solid #e0a030; padding: 0.4em 0.8em; margin: 0.6em 0; }
.missing { color: #a33; font-style: italic; }
.meta { color: #666; font-size: 0.9em; }
img { max-width: 100%; height: auto; display: block; margin: 0.6em 0; }
article { border-top: 1px dashed #ccc; margin-top: 1.5em; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def build_report(run_paths: list[Path], split: str = "test") -> str:
    """The page for ``run_paths`` evaluated on ``split`` (RunError for a path that is not a run)."""
    results = load_results(run_paths, split)
    if not results:
        raise ValueError("no runs to report on")
    rows = rows_of(results)
    body = [
        f"<h1>etbert report</h1><p class='meta'>{len(results)} run(s), {_e(split)} split; "
        f"generated {_e(now())} by etbert {_e(__version__)}</p>",
        _protocol_banner(rows),
        _dataset_section(results, rows),
        _comparison_section(rows),
        _per_class_section(results),
        _early_section(results),
        _runs_section(results, rows),
    ]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>etbert report</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(run_paths: list[Path], output: Path, split: str = "test") -> Path:
    """Write the page through a temporary file, so a failed build never leaves half a report."""
    output = Path(output)
    page = build_report(run_paths, split)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(output)
    return output


# ----- sections ---------------------------------------------------------------------------------------


def _protocol_banner(rows: list[dict]) -> str:
    lines = [f"<div class='protocol'><strong>{_e(dataset)}</strong>: {_protocol_explained(split_type, anonymize)}</div>"
             for dataset, split_type, anonymize in dict.fromkeys(
                 (row["dataset"], row["split_type"], row["anonymize"]) for row in rows)]
    differing = mixed_protocols(rows)
    if differing:
        lines.append(f"<div class='warning'>These runs differ in {_e(', '.join(differing))}: their numbers are "
                     "not directly comparable.</div>")
    return "\n".join(lines)


def _dataset_section(results: list[RunResults], rows: list[dict]) -> str:
    parts = ["<section id='summary'><h2>Datasets</h2>"]
    seen = set()
    for result, row in zip(results, rows):
        if row["manifest_sha256"] in seen:
            continue
        seen.add(row["manifest_sha256"])
        facts, note = _dataset_facts(result)
        runs = [r["run"] for r in rows if r["manifest_sha256"] == row["manifest_sha256"]]
        parts.append(f"<h3>{_e(row['dataset'])}</h3>")
        parts.append(f"<div class='protocol'>{_protocol(facts['split_type'], facts['anonymize'])}</div>")
        if note:
            parts.append(f"<p class='warning'>{_e(note)}</p>")
        parts.append(_key_values([("path", facts["path"]), ("manifest sha256", facts["manifest_sha256"]),
                                  ("runs", ", ".join(runs)), ("classes", len(facts["classes"])),
                                  *facts["extra"]]))
        parts.append(_class_counts_table(facts["class_counts"]))
    parts.append("</section>")
    return "\n".join(parts)


def _comparison_section(rows: list[dict]) -> str:
    header = ["run", "model", "dataset", "split (evaluated)", "anonymisation", "flows",
              *(heading for _, heading in PAPER_COLUMNS), "weighted F1"]
    body = []
    for row in rows:
        protocol = [row["run"], row["model"], row["dataset"], f"{row['split_type']} ({row['split']})",
                    row["anonymize"]]
        if row["evaluated"]:
            numbers = [row["samples"], *(_number(row[key]) for key, _ in PAPER_COLUMNS), _number(row["weighted_f1"])]
            body.append(_cells(protocol) + "".join(f"<td class='num'>{_e(str(n))}</td>" for n in numbers))
        else:
            body.append(_cells(protocol) + f"<td colspan='{len(PAPER_COLUMNS) + 2}' class='missing'>"
                        f"{_not_evaluated(row['path'], row['split'])}</td>")
    parts = ["<section id='comparison'><h2>Model comparison</h2>",
             "<p class='meta'>AC accuracy, PR/RC/F1 macro averages over the classes present in the evaluated "
             "split (each class counts the same, whatever its size).</p>",
             _table(header, body)]
    if any(row["evaluated"] for row in rows):
        parts.append(_image(plots.comparison_png(rows), "AC, PR, RC and F1 of each evaluated run"))
    parts.append("</section>")
    return "\n".join(parts)


def _per_class_section(results: list[RunResults]) -> str:
    evaluated = [result for result in results if result.metrics]
    parts = ["<section id='per-class'><h2>Per-class F1</h2>"]
    if evaluated:
        parts.append(_protocol_caption(evaluated))
        parts.append(_image(plots.per_class_f1_png({r.label: r.metrics["per_class"] for r in evaluated}),
                            "F1 of each class, one bar per run"))
    parts.extend(f"<p class='missing'>{_e(r.label)}: {_not_evaluated(str(r.run.path), r.split)}</p>"
                 for r in results if not r.metrics)
    parts.append("</section>")
    return "\n".join(parts)


def _early_section(results: list[RunResults]) -> str:
    with_curve = [result for result in results if result.early]
    parts = ["<section id='early'><h2>Early identification</h2>",
             "<p class='meta'>Each flow cut to its first n packets before classification: how soon the traffic "
             "is recognised.</p>"]
    if with_curve:
        parts.append(_protocol_caption(with_curve))
        parts.append(_image(plots.early_png({r.label: r.early["points"] for r in with_curve}),
                            "accuracy and macro F1 against the number of packets"))
        header = ["run", "packets", *(HEADINGS[key] for key in HEADLINE)]
        body = [_cells([r.label, p["packets"]]) + "".join(f"<td class='num'>{_number(p[key])}</td>" for key in HEADLINE)
                for r in with_curve for p in r.early["points"]]
        parts.append(f"<details><summary>figures</summary>{_table(header, body)}</details>")
    parts.extend(f"<p class='missing'>{_e(r.label)}: no early-identification curve on the {_e(r.split)} split "
                 f"(run <code>{_e(_evaluate_command(str(r.run.path), r.split) + ' --early')}</code>)</p>"
                 for r in results if not r.early)
    parts.append("</section>")
    return "\n".join(parts)


def _runs_section(results: list[RunResults], rows: list[dict]) -> str:
    parts = ["<section id='runs'><h2>Runs</h2>"]
    for index, (result, row) in enumerate(zip(results, rows)):
        info = result.run.info
        parts.append(f"<article id='run-{index}' class='run'><h3>{_e(result.label)}</h3>")
        parts.append(f"<div class='protocol'>model <strong>{_e(info['model'])}</strong> on "
                     f"<strong>{_e(row['dataset'])}</strong>, {_e(result.split)} split: "
                     f"{_protocol(result.split_type, result.anonymize)}</div>")
        parts.append(_key_values([("path", str(result.run.path)), ("created", info.get("created", "")),
                                  ("seed", info.get("seed", "")),
                                  ("training time", f"{info.get('train_seconds', 0):.1f} s"),
                                  ("settings", json.dumps(info.get("settings", {}), sort_keys=True))]))
        if result.metrics:
            parts.append(_run_metrics(result))
        else:
            parts.append(f"<p class='missing'>{_not_evaluated(str(result.run.path), result.split)}</p>")
        parts.append("</article>")
    parts.append("</section>")
    return "\n".join(parts)


def _run_metrics(result: RunResults) -> str:
    metrics = result.metrics
    parts = [_headline_table([("flows", metrics)] + ([("packets", metrics["packet_level"])]
                                                     if metrics.get("packet_level") else []))]
    binary = metrics.get("binary")
    if binary:
        counts = binary["counts"]
        parts.append(f"<p>{_e(binary['positive'])} vs {_e(binary['negative'])}: precision "
                     f"{_number(binary['precision'])}, recall {_number(binary['recall'])}, specificity "
                     f"{_number(binary['specificity'])}, NPV {_number(binary['npv'])} "
                     f"(TP {counts['tp']}, TN {counts['tn']}, FP {counts['fp']}, FN {counts['fn']})</p>")
    parts.append(_image(plots.confusion_png(metrics["confusion_matrix"]),
                        f"confusion matrix of {result.label}"))
    header = ["class", "precision", "recall", "F1", "support"]
    body = [_cells([label]) + "".join(f"<td class='num'>{_number(scores[key])}</td>"
                                      for key in ("precision", "recall", "f1"))
            + f"<td class='num'>{int(scores['support'])}</td>"
            for label, scores in metrics["per_class"].items()]
    parts.append(_table(header, body))
    return "\n".join(parts)


# ----- data -------------------------------------------------------------------------------------------


def _dataset_facts(result: RunResults) -> tuple[dict, str]:
    """What the report says about a run's dataset: its manifest when it is still there and unchanged,
    else what run.json recorded at training time (with a note saying so)."""
    recorded = result.run.info["dataset"]
    counts: dict[str, dict[str, int]] = {}
    for split, by_class in recorded.get("class_counts", {}).items():
        for label, count in by_class.items():
            counts.setdefault(label, {})[split] = count
    facts = {"path": recorded["path"], "manifest_sha256": recorded.get("manifest_sha256", ""),
             "split_type": recorded.get("split_type", "?"), "anonymize": recorded.get("anonymize", "?"),
             "classes": recorded.get("classes", sorted(counts)), "class_counts": counts,
             "extra": [("packets per flow (K)", recorded.get("max_packets", "?"))]}
    try:
        manifest = read_manifest(Path(recorded["path"]))
        changed = manifest_sha256(Path(recorded["path"])) != facts["manifest_sha256"]
    except (DatasetError, OSError):
        return facts, f"the dataset is no longer at {recorded['path']}: figures as recorded when the run was trained"
    if changed:
        return facts, (f"the dataset at {recorded['path']} changed since the run was trained: "
                       "figures as recorded at training time")
    parameters = manifest.get("parameters", {})
    meter = parameters.get("meter", {})
    facts["class_counts"] = manifest.get("counts", counts)
    facts["classes"] = sorted(facts["class_counts"])
    facts["extra"] = [
        ("packets per flow (K)", meter.get("max_packets", "?")),
        ("bytes kept per packet", meter.get("max_packet_bytes", "?")),
        ("split fractions", ", ".join(str(f) for f in parameters.get("fractions", []))),
        ("seed", parameters.get("seed", "?")),
        ("labels", parameters.get("labels", "?")),
        ("duplicate flows removed", (manifest.get("duplicates") or {}).get("duplicates", 0)),
        ("flows dropped by class limits", (manifest.get("class_limits") or {}).get("removed", 0)),
        ("unlabelled flows", manifest.get("totals", {}).get("unlabelled_flows", 0)),
        ("created", manifest.get("created", "")),
    ]
    return facts, ""


# ----- HTML pieces ------------------------------------------------------------------------------------


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _protocol(split_type: str, anonymize: str) -> str:
    return f"split type <strong>{_e(split_type)}</strong>, anonymisation <strong>{_e(anonymize)}</strong>"


def _protocol_explained(split_type: str, anonymize: str) -> str:
    split_note = SPLIT_MEANING.get(split_type, "unknown split type")
    anonymize_note = ANONYMIZE_MEANING.get(anonymize, "unknown policy")
    return (f"split type <strong>{_e(split_type)}</strong> ({_e(split_note)}); anonymisation "
            f"<strong>{_e(anonymize)}</strong> ({_e(anonymize_note)})")


def _protocol_caption(results: list[RunResults]) -> str:
    protocols = dict.fromkeys((r.split_type, r.anonymize) for r in results)
    text = "; ".join(_protocol(split_type, anonymize) for split_type, anonymize in protocols)
    return f"<p class='protocol'>{text} ({_e(results[0].split)} split)</p>"


def _not_evaluated(path: str, split: str) -> str:
    return f"not evaluated: run <code>{_e(_evaluate_command(path, split))}</code>"


def _evaluate_command(path: str, split: str) -> str:
    return f"etbert evaluate {path}" + ("" if split == "test" else f" --split {split}")


def _image(png: bytes, alt: str) -> str:
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"


def _cells(values: list) -> str:
    return "".join(f"<td>{_e(value)}</td>" for value in values)


def _table(header: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    body = "".join(f"<tr>{row}</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _key_values(pairs: list[tuple[str, object]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>" for key, value in pairs) + "</table>"


def _headline_table(levels: list[tuple[str, dict]]) -> str:
    header = ["level", "samples", *(HEADINGS[key] for key in HEADLINE)]
    body = [_cells([level]) + f"<td class='num'>{metrics['samples']}</td>"
            + "".join(f"<td class='num'>{_number(metrics[key])}</td>" for key in HEADLINE)
            for level, metrics in levels]
    return _table(header, body)


def _class_counts_table(counts: dict[str, dict[str, int]]) -> str:
    header = ["class", *SPLITS, "total"]
    body = [_cells([label or "(unlabelled)"]) + "".join(f"<td class='num'>{by_split.get(s, 0)}</td>" for s in SPLITS)
            + f"<td class='num'>{sum(by_split.values())}</td>" for label, by_split in sorted(counts.items())]
    totals = {split: sum(by_split.get(split, 0) for by_split in counts.values()) for split in SPLITS}
    body.append("<td><strong>all</strong></td>" + "".join(f"<td class='num'><strong>{totals[s]}</strong></td>"
                                                          for s in SPLITS)
                + f"<td class='num'><strong>{sum(totals.values())}</strong></td>")
    return _table(header, body)
