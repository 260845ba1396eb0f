"""The `zerog` command line: a friendly face over the library.

One module per command group (:mod:`~zerog.cli.run`: run and resume, :mod:`~zerog.cli.runs`:
runs, show, export and replay, :mod:`~zerog.cli.batch`, :mod:`~zerog.cli.serve`,
:mod:`~zerog.cli.cache`, :mod:`~zerog.cli.routes`, :mod:`~zerog.cli.diff`,
:mod:`~zerog.cli.sandbox`), the shared option types in :mod:`~zerog.cli.options`, one
``fail()`` in :mod:`~zerog.cli.errors`, all assembled by :mod:`~zerog.cli.app`.
"""

from zerog.cli.app import main

__all__ = ["main"]
