"""The report: comparison rows and a self-contained HTML page, rendered by a real browser."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from etbert.cli import app
from etbert.dataset.prepare import PrepareConfig, prepare
from etbert.evaluation.evaluate import early_curve, evaluate_run
from etbert.evaluation.train import train_run
from etbert.report import plots
from etbert.report.compare import comparison_rows, comparison_table
from etbert.report.html import build_report

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("summary", "comparison", "per-class", "early", "runs")
ODD_NAME = "a<b>&'run\""  # a run folder name that breaks any page that does not escape it
INLINE = ("strong", "code", "em")
runner = CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, lab_dataset) -> dict[str, Path]:
    """Runs on two datasets (flow split + strict, capture split + seed-004), one of them never evaluated.

    A real classic model on the flow split, the majority baseline elsewhere (the page is under test here,
    not the models; the baseline keeps it cheap).
    """
    root = tmp_path_factory.mktemp("report")
    capture_dataset = root / "capture-ds"
    prepare(REPO / "data" / "lab-default", capture_dataset,
            PrepareConfig(split="capture", anonymize="seed-004"))
    flow = train_run(lab_dataset, "random-forest", root / ODD_NAME, {"n_estimators": 20})
    capture = train_run(capture_dataset, "majority", root / "capture-run")
    for run in (flow, capture):
        evaluate_run(run)
        early_curve(run, max_packets=4)
    unevaluated = train_run(lab_dataset, "majority", root / "unevaluated", seed=1)
    return {"flow": flow, "capture": capture, "unevaluated": unevaluated}


def test_comparison_rows_carry_dataset_split_and_anonymisation(runs):
    rows = comparison_rows([runs["flow"], runs["capture"], runs["unevaluated"]])
    flow, capture, unevaluated = rows
    metrics = json.loads((runs["flow"] / "metrics.json").read_text())
    assert (flow["run"], flow["model"]) == (ODD_NAME, "random-forest")
    assert (flow["split_type"], flow["anonymize"]) == ("flow", "strict")
    assert flow["accuracy"] == metrics["accuracy"] and flow["macro_f1"] == metrics["macro_f1"]
    assert flow["samples"] == metrics["samples"] > 0
    assert (capture["dataset"], capture["split_type"], capture["anonymize"]) == ("capture-ds", "capture", "seed-004")
    assert flow["dataset"] != capture["dataset"] and flow["dataset"] == unevaluated["dataset"]
    assert unevaluated["evaluated"] is False and unevaluated["accuracy"] is None
    text = io.StringIO()
    Console(file=text, width=200).print(comparison_table(rows))
    printed = text.getvalue()
    assert "not evaluated" in printed and "seed-004" in printed and "capture (test)" in printed
    assert f"{metrics['accuracy']:.4f}" in printed


def test_report_renders_every_section_with_decoded_charts_in_chromium(runs, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        pytest.skip("chromium is not installed (make test installs it where apt-get is available)")
    output = tmp_path / "out" / "report.html"
    result = runner.invoke(app, ["report", str(runs["flow"]), str(runs["capture"]), str(runs["unevaluated"]),
                                 "-o", str(output)])
    assert result.exit_code == 0, result.output
    page = output.read_text()
    # self-contained: every src/href is inline data, and the page runs no script of its own
    assert not re.search(r"""(?:src|href)=['"](?!data:)""", page) and "<script" not in page
    # the test adds one script: it counts the images the browser decoded once the page has loaded
    probe = ("<script>addEventListener('load', () => { const all = [...document.images]; document.body.dataset"
             ".decoded = all.filter(i => i.complete && i.naturalWidth > 0).length + '/' + all.length; });</script>")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    dom = subprocess.run([chromium, "--headless", "--disable-gpu", "--no-sandbox",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probed.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    parsed = _Dom()
    parsed.feed(dom)
    assert set(SECTIONS) <= parsed.ids
    # 1 comparison chart + 1 per-class chart + 1 early chart + 2 confusion matrices (the third run has none)
    assert parsed.body.get("data-decoded") == "5/5"
    assert "b" not in parsed.tags  # the odd run name stayed text
    text = " ".join(parsed.text.split())
    assert ODD_NAME in text
    assert f"not evaluated: run etbert evaluate {runs['unevaluated']}" in text
    assert "These runs differ in datasets, split types, anonymisation" in text
    runs_text = text[text.index("Runs"):]
    for protocol in ("split type flow, anonymisation strict", "split type capture, anonymisation seed-004"):
        assert protocol in runs_text  # every run's numbers sit next to their protocol
    assert "tls-download" in text and "rest vs background" in text


def test_report_falls_back_to_run_json_and_shows_other_splits(lab_dataset, tmp_path):
    dataset = tmp_path / "gone"
    shutil.copytree(lab_dataset, dataset)
    run = train_run(dataset, "majority", tmp_path / "run")
    evaluate_run(run, "val")
    shutil.rmtree(dataset)
    page = build_report([run], split="val")
    assert f"the dataset is no longer at {dataset.resolve()}" in page
    recorded = json.loads((run / "run.json").read_text())["dataset"]["class_counts"]
    background = "".join(f"<td class='num'>{recorded[split]['background']}</td>" for split in ("train", "val", "test"))
    assert f"<td>background</td>{background}" in page
    val = json.loads((run / "metrics-val.json").read_text())
    assert f"{val['accuracy']:.4f}" in page and "val split" in page
    assert "not evaluated" not in page
    assert f"etbert evaluate {run} --split val --early" in page  # no early curve on val yet


def test_report_errors_are_one_line(runs, tmp_path):
    empty = runner.invoke(app, ["report", "-o", str(tmp_path / "r.html")])
    assert empty.exit_code == 2 and "no runs given" in empty.output
    not_run = runner.invoke(app, ["report", str(runs["flow"]), str(tmp_path), "-o", str(tmp_path / "r.html")])
    assert not_run.exit_code == 2 and "is not a run directory" in not_run.output
    assert "Traceback" not in not_run.output and not (tmp_path / "r.html").exists()


def test_confusion_heatmap_is_a_deterministic_non_blank_png():
    confusion = {"labels": ["a", "b", "c"], "matrix": [[5, 1, 0], [0, 0, 0], [2, 0, 7]]}
    png = plots.confusion_png(confusion)
    assert png == plots.confusion_png(confusion)
    from matplotlib.image import imread

    pixels = imread(io.BytesIO(png), format="png")
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and float(np.std(pixels)) > 0.05


class _Dom(HTMLParser):
    """Element ids, tag names, the body's attributes and the visible text of a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.tags: set[str] = set()
        self.body: dict[str, str] = {}
        self.text = ""
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.add(tag)
        if "id" in attributes:
            self.ids.add(attributes["id"])
        if tag == "body":
            self.body = attributes
        if tag in ("style", "script"):
            self._hidden += 1
        if tag not in INLINE:
            self.text += " "

    def handle_endtag(self, tag):
        if tag in ("style", "script"):
            self._hidden -= 1
        if tag not in INLINE:
            self.text += " "

    def handle_data(self, data):
        if not self._hidden:
            self.text += data
