"""The ``stream-aimass`` command line: :func:`main` (the console script), one module per
command group (worker, data, ops, bench, train, eval, models), shared options in ``support``."""

from stream_aimass.cli.main import main

__all__ = ["main"]
