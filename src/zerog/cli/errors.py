"""How every zerog command reports bad input: one red line on stderr and exit code 2,
and the exit codes the commands end with."""

from __future__ import annotations

from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from zerog.text import one_line

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def fail(reason: object) -> NoReturn:
    """Print ``reason`` (an error or a text, shown as plain text) as ``error: ...`` on
    stderr and end the command with exit code 2 (:data:`EXIT_USAGE`).

    A pydantic ``ValidationError`` is shown as its first error only: ``invalid WHERE: MSG``.
    """
    if isinstance(reason, ValidationError):
        first = reason.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        reason = f"invalid {where}: {first['msg']}"
    Console(stderr=True, highlight=False).print(
        f"error: {one_line(str(reason), 500)}", style="red", markup=False
    )
    raise typer.Exit(EXIT_USAGE)
