"""`python -m etbert.lab ...`: the same commands as `etbert lab ...`."""

from etbert.lab.cli import app

app(prog_name="etbert lab")
