"""The command line: thin wrappers, clear errors."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from etbert.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_prepare_then_inspect_print_the_summary_with_split_and_policy(tmp_path):
    out = tmp_path / "ds"
    result = runner.invoke(app, ["prepare", str(REPO / "data" / "lab-default"), "-o", str(out), "--split", "capture",
                                 "--anonymize", "seed-004", "--packets", "6"])
    assert result.exit_code == 0, result.output
    assert "split: capture" in result.output and "anonymisation: seed-004" in result.output
    assert "tls-api" in result.output
    again = runner.invoke(app, ["inspect", str(out)])
    assert again.exit_code == 0
    assert "tls-api" in again.output and "split: capture" in again.output


def test_errors_are_one_clear_line(tmp_path):
    missing = runner.invoke(app, ["prepare", str(tmp_path / "nope"), "-o", str(tmp_path / "ds")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
    bad_policy = runner.invoke(app, ["prepare", str(REPO / "data"), "-o", str(tmp_path / "ds"), "--anonymize", "x"])
    assert bad_policy.exit_code == 2 and "strict, seed-004, none" in bad_policy.output
    bad_labels = tmp_path / "labels.csv"
    bad_labels.write_text("file,class\na.pcap,x\n")
    labels = runner.invoke(app, ["prepare", str(REPO / "data" / "lab-default"), "-o", str(tmp_path / "ds"),
                                 "--labels", str(bad_labels)])
    assert labels.exit_code == 2 and "column" in labels.output
    assert "Traceback" not in labels.output
    not_dataset = runner.invoke(app, ["inspect", str(tmp_path)])
    assert not_dataset.exit_code == 2 and "manifest.json" in not_dataset.output
    assert not (tmp_path / "ds").exists()
