"""How every zerog command reports bad input: one red line on stderr and exit code 2."""

from __future__ import annotations

import typer
from rich.console import Console

from zerog.text import one_line

EXIT_USAGE = 2


def usage_error(message: object) -> typer.Exit:
    """Print ``message`` (an error or a text, shown as plain text) and return the exit to
    raise."""
    Console(stderr=True, highlight=False).print(
        f"error: {one_line(str(message), 500)}", style="red", markup=False
    )
    return typer.Exit(EXIT_USAGE)
