from etbert.cli import app

app()
