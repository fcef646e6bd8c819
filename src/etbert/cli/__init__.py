"""The `etbert` command line: argument parsing and printing only; the work lives in the library.

Each module registers its commands on the shared app; importing them here assembles the CLI.
"""

from etbert.cli import dataset, etbert, handshake, report, runs, uer  # noqa: F401  (registers commands)
from etbert.cli.common import app

__all__ = ["app"]
