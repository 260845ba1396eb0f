"""Command-line options that several commands share (`zerog run`, `zerog resume`,
`zerog batch`, `zerog serve`, the bench commands), typed once so that their names, limits
and help stay the same everywhere.

The budget flags (--max-iterations, --max-input-tokens, --max-output-tokens, --max-cost,
--max-time) mean a limit of the run in `zerog run`, a per-goal default in `zerog batch` and
a ceiling in `zerog serve`: their name and limits are defined here once, and each command
says in its help what the flag means there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.models import OptionInfo

StoreOption = Annotated[
    Path | None,
    typer.Option(
        help="The SQLite run store (default: $ZEROG_STORE, else ~/.local/share/zerog/runs.db).",
        show_default=False,
    ),
]
OtlpOption = Annotated[
    str | None,
    typer.Option(
        "--otlp-endpoint",
        envvar="OTEL_EXPORTER_OTLP_ENDPOINT",
        help="Export OpenTelemetry spans of the run to this OTLP/HTTP collector "
        "(needs the otel extra). Off by default.",
        show_default=False,
    ),
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show model calls and feedback.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
PrintJsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ForceWorkspaceOption = Annotated[
    bool,
    typer.Option(
        "--force-workspace",
        help="Accept a workspace zerog refuses by default: the file system's root, a system "
        "directory, the home directory (or one holding it), or one holding zerog's "
        "configuration, store or data cache. A run may rewrite or delete anything there.",
    ),
]
SandboxOption = Annotated[
    str | None, typer.Option("--sandbox", help="bwrap (default on Linux), wasm or local.")
]
ColorOption = Annotated[
    bool | None,
    typer.Option(
        "--color/--no-color",
        help="Colour the diff (default: only when printing to a terminal and NO_COLOR is not set).",
        show_default=False,
    ),
]
RoundsOption = Annotated[int, typer.Option(help="Rounds; the median is reported.", min=1)]


def model_option(help: str) -> OptionInfo:
    """``--model``/``-m``: a model spec (scripted:FILE, local, openai:MODEL, ...)."""
    option: OptionInfo = typer.Option("--model", "-m", help=help)
    return option


def timeout_option(help: str) -> OptionInfo:
    """``--timeout``: seconds one action or check may run, more than 0."""
    option: OptionInfo = typer.Option("--timeout", help=help, min=0.001)
    return option


def stuck_after_option(help: str) -> OptionInfo:
    """``--stuck-after``: failed iterations alike in a row before a run stops, at least 1."""
    option: OptionInfo = typer.Option("--stuck-after", help=help, min=1)
    return option


def max_iterations_option(help: str, *, most: int | None = None) -> OptionInfo:
    """``--max-iterations``: at least 1 (and at most ``most``)."""
    option: OptionInfo = typer.Option("--max-iterations", help=help, min=1, max=most)
    return option


def max_input_tokens_option(help: str, *, show_default: bool = True) -> OptionInfo:
    """``--max-input-tokens``: at least 1."""
    option: OptionInfo = typer.Option(
        "--max-input-tokens", help=help, min=1, show_default=show_default
    )
    return option


def max_output_tokens_option(help: str, *, show_default: bool = True) -> OptionInfo:
    """``--max-output-tokens``: at least 1."""
    option: OptionInfo = typer.Option(
        "--max-output-tokens", help=help, min=1, show_default=show_default
    )
    return option


def max_cost_option(help: str, *, show_default: bool = True) -> OptionInfo:
    """``--max-cost``: money (USD), at least 0."""
    option: OptionInfo = typer.Option("--max-cost", help=help, min=0, show_default=show_default)
    return option


def max_time_option(help: str) -> OptionInfo:
    """``--max-time``: seconds of wall time, more than 0."""
    option: OptionInfo = typer.Option("--max-time", help=help, min=0.001)
    return option


def max_seconds_option(help: str) -> OptionInfo:
    """``--max-seconds`` (`zerog serve`'s ceiling of a run's wall time): at least 1 s."""
    option: OptionInfo = typer.Option("--max-seconds", help=help, min=1)
    return option


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
