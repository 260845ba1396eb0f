"""Command-line options that several commands share (`zerog run`, `zerog batch`), typed
once so that their names, limits and help stay the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RouterOption = Annotated[
    str,
    typer.Option(
        "--router",
        help="Carry out predictable steps without the model: off, builtin (steps the "
        "planner marks with an op) or compiled (builtin, then --router-file's routes).",
    ),
]
RouterFileOption = Annotated[
    Path | None,
    typer.Option(help="A router compiled by `zerog routes compile` (--router compiled)."),
]
AnswerFileOption = Annotated[
    str | None,
    typer.Option(
        help="The goal is about this one Python file of its workspace: the model answers "
        "with its code in a code block instead of a JSON plan (better for small models).",
        show_default=False,
    ),
]
EscalateOption = Annotated[
    list[str],
    typer.Option(
        help="After a failed iteration, move up to this model (repeatable, in order), "
        "e.g. --model local --escalate local:1.5b.",
    ),
]
EscalateAfterOption = Annotated[
    int,
    typer.Option(
        min=1,
        help="With --escalate: failed iterations of a model before the next one is asked "
        "(2 gives the cheaper model one retry that sees its failure first).",
    ),
]
UnsureTokensOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="With --escalate: an answer that passes the checks but whose code had at "
        "least this many tokens the model was unsure of (probability < 0.5) gets "
        "a second opinion from the next model; if that fails the checks, the first "
        "answer is kept. Needs token probabilities: the local models and "
        "OpenAI-compatible servers give them, Anthropic's API does not.",
        show_default=False,
    ),
]
PreflightOption = Annotated[
    bool,
    typer.Option(
        "--preflight/--no-preflight",
        help="Run the checks once on the untouched workspace before the first model call: "
        "checks that already pass end the run (nothing to do), checks that cannot run at "
        "all (a command or module missing in the sandbox) end it with exit code 2 and the "
        "fix, a failure is the first plan's feedback.",
    ),
]
MountOption = Annotated[
    list[str],
    typer.Option(
        "--mount",
        help="Also show the bwrap sandbox this host path: SRC[:DST][:ro|rw] (repeatable; "
        "read-only unless rw). The goal's toolchain (its venv, interpreter, test runner) "
        "is bound without it. Refused: /, /proc, /sys, /dev, home directories, "
        "credentials (~/.ssh, ~/.aws, ...), zerog's own files, the workspace.",
    ),
]
