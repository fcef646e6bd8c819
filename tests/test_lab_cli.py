from typer.testing import CliRunner

from etbert.lab.classes import ALL_CLASSES
from etbert.lab.cli import app


def test_list_names_every_class_and_whether_it_runs_here():
    result = CliRunner().invoke(app, ["list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ALL_CLASSES:
        assert name in result.output
    assert "yes" in result.output or "no" in result.output


def test_generate_refuses_bad_requests_with_one_clear_line(tmp_path):
    result = CliRunner().invoke(app, ["generate", "-o", str(tmp_path / "out"), "--classes", "ssh,nope"], terminal_width=200)
    assert result.exit_code == 2
    assert "unknown class(es) nope" in result.output
    assert "Traceback" not in result.output
