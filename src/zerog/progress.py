"""Live progress in a terminal: an event sink that prints the loop as it happens.

All text that came from a model or a command is sanitized and printed as plain text
(never as rich markup), so it cannot restyle or take over the terminal.
"""

from __future__ import annotations

from rich.console import Console
from rich.status import Status
from rich.text import Text

from zerog.event_catalog import (
    ActionRetried,
    ActionStarted,
    AnyEvent,
    CheckDone,
    CodeFailed,
    CodeSkipped,
    FeedbackGiven,
    IterationStarted,
    ModelCalled,
    ObservationData,
    ObservationMade,
    PlanMade,
    PreflightDone,
    ProtectedRestored,
    Resumed,
    RolledBack,
    RouteDecided,
    RunStarted,
    SandboxBinds,
    StepChecked,
    StepStarted,
    UnknownEvent,
    ValidationStarted,
    parse,
)
from zerog.events import Event
from zerog.text import one_line
from zerog.types import Action, ShellAction, WriteFileAction


def _action_label(action: Action | None) -> str:
    if action is None:
        return "?"
    if isinstance(action, ShellAction):
        return f"$ {action.command}"
    if isinstance(action, WriteFileAction):
        return f"write {action.path}"
    return f"edit {action.path}"


_PHASES = {
    "iteration_started": "planning",
    "plan": "acting",
    "step_started": "acting",
    "action": "running an action",
    "observation": "acting",
    "validation_started": "validating",
    "verdict": "validating",
    "rollback": "rolling back",
    "feedback": "re-planning",
}


def _tail_lines(observation: ObservationData, count: int) -> list[str]:
    """The last non-empty output lines of an observation event, stderr first."""
    for text in (observation.stderr, observation.stdout):
        lines = [ln for ln in text.splitlines() if any(c.isalnum() for c in ln)]
        if lines:
            return lines[-count:]
    return []


class ConsoleProgress:
    """Prints one line per notable event, and keeps a running token count."""

    def __init__(self, console: Console, verbose: bool = False, live: bool = True) -> None:
        self._console = console
        self._verbose = verbose
        self._live = live
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0
        self._pending = ""
        self._status: Status | None = None
        self._iteration = 0
        self._model = ""  # the model that answered last (a cascade moves up)

    def _phase(self, phase: str) -> None:
        """Update the transient status line (shown on terminals only)."""
        if not self._live or not self._console.is_terminal:
            return
        where = f"iteration {self._iteration}" if self._iteration else "preflight"
        text = f"{where} · {phase} · {self.input_tokens:,} in / {self.output_tokens:,} out tokens"
        if self._status is None:
            self._status = self._console.status(text)
            self._status.start()
        else:
            self._status.update(text)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None

    def _line(self, *parts: tuple[str, str]) -> None:
        text = Text()
        for content, style in parts:
            text.append(content, style=style)
        self._console.print(text, soft_wrap=False, overflow="ellipsis", no_wrap=True)

    def _preflight(self, preflight: PreflightDone) -> None:
        """What the preflight concluded (its checks are printed as they finish)."""
        if preflight.outcome == "passed":
            self._line(("   ✓ nothing to do: the checks already pass", "green"))
            return
        if preflight.outcome == "failed":
            self._line(("   the checks fail: their output is the first plan's feedback", ""))
            if self._verbose:
                for line in preflight.feedback.splitlines()[:12]:
                    self._line(("     │ ", "dim"), (one_line(line, 110), "dim"))
            return
        for refusal in preflight.cannot_run:  # the cause and the fix are in the summary
            self._line(
                ("   ✗ cannot run at all: ", "bold red"),
                (one_line(refusal.check, 90), ""),
            )

    def _sandbox_binds(self, binds: SandboxBinds) -> None:
        """What the sandbox sees besides the workspace: with --verbose and in `zerog show`
        (not live without it); what could not be bound, always."""
        if self._verbose or not self._live:
            for bind in binds.binds:
                where = bind.source
                if bind.dest != where:
                    where = f"{where} at {bind.dest}"
                self._line(
                    (f"   ⊕ sandbox sees {bind.mode} ", "dim"),
                    (one_line(where, 90), ""),
                    (f"  ({one_line(bind.why, 60)})", "dim"),
                )
            if binds.path:
                shown = one_line(":".join(binds.path), 100)
                self._line(("   ⊕ PATH starts with ", "dim"), (shown, ""))
        for skipped in binds.skipped:
            self._line(
                ("   ! not shown to the sandbox: ", "yellow"),
                (one_line(skipped.path, 70), ""),
                (f" ({one_line(skipped.why, 40)}): ", "dim"),
                (one_line(skipped.reason, 100), "dim"),
            )

    def emit(self, event: Event) -> None:
        typed = parse(event)
        phase = _PHASES.get(event.kind)
        if isinstance(typed, IterationStarted):
            self._iteration = typed.iteration
        if event.kind == "run_finished":
            self.close()
        elif phase is not None:
            self._phase(phase)
        self._show(event.run_id, typed)

    def _show(self, run_id: str, typed: AnyEvent | UnknownEvent) -> None:
        """The line(s) of one event (none for an unknown one: `zerog show --raw` has it)."""
        match typed:
            case RunStarted():
                self._line(
                    (f"zerog run {run_id}", "bold"),
                    (f"  model {one_line(typed.model, 60)}", "dim"),
                    (f"  sandbox {typed.sandbox}", "dim"),
                )
            case SandboxBinds():
                self._sandbox_binds(typed)
            case IterationStarted():
                self._line(
                    (f"── iteration {typed.iteration} ", "bold cyan"),
                    (f"· {self.input_tokens:,} in / {self.output_tokens:,} out tokens", "dim"),
                )
            case ModelCalled():
                self._model_call(typed)
            case PlanMade(steps=steps):
                count = len(steps)
                self._line((f"   plan: {count} step{'s' if count != 1 else ''}", ""))
            case StepStarted():
                self._line((f"   {typed.step + 1}. ", "bold"), (one_line(typed.intent, 100), ""))
            case ActionStarted():
                self._pending = one_line(_action_label(typed.action), 90)
            case CodeSkipped():
                self._line(
                    ("      - no code asked for ", "yellow"),
                    (one_line(typed.path, 80), ""),
                    (": it is protected", "dim"),
                )
            case CodeFailed():
                self._line(("      ✗ no usable code: ", "red"), (one_line(typed.reason, 100), ""))
            case ObservationMade():
                ok = typed.status == "success"
                mark, style = ("✓", "green") if ok else ("✗", "red")
                detail = f" {typed.status}" if not ok else ""
                if typed.exit_code not in (None, 0):
                    detail += f" (exit {typed.exit_code})"
                self._line(
                    (f"      {mark} ", style),
                    (self._pending, ""),
                    (f"{detail}  {typed.duration * 1000:.0f} ms", "dim"),
                )
            case StepChecked():
                ok = typed.passed
                self._line(
                    (f"      {'✓' if ok else '✗'} step check ", "green" if ok else "red"),
                    (one_line(typed.command, 80), ""),
                    ("  (flaky: passed on its re-run)" if typed.flaky else "", "yellow"),
                )
            case CheckDone():
                ok = typed.passed
                self._line(
                    (f"   {'✓' if ok else '✗'} check ", "green" if ok else "red"),
                    (one_line(typed.name, 80), ""),
                    ("  (flaky: passed on its re-run)" if typed.flaky else "", "yellow"),
                )
                if not ok:
                    for line in _tail_lines(typed.observation, 3):
                        self._line(("     │ ", "dim"), (one_line(line, 110), "dim"))
            case ValidationStarted(iteration=0):
                self._line(
                    ("── preflight ", "bold cyan"),
                    ("· the checks on the untouched workspace, before any model call", "dim"),
                )
            case PreflightDone():
                self._preflight(typed)
            case RolledBack(iteration=0, final=False):
                if typed.written + typed.removed:
                    self._line(
                        (
                            f"   ↺ what the checks wrote was rolled back ({typed.written} "
                            f"restored, {typed.removed} removed)",
                            "yellow",
                        )
                    )
            case RolledBack():
                self._line(
                    (
                        f"   ↺ rolled back ({typed.written} restored, {typed.removed} removed)",
                        "yellow",
                    )
                )
            case ProtectedRestored():
                shown = list(typed.paths[:4])
                more = typed.count - len(shown)
                listed = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
                self._line(
                    ("   ↺ protected files put back before the checks: ", "yellow"),
                    (one_line(listed, 90), ""),
                )
            case RouteDecided(decision="routed" | "demoted"):
                routed = typed.decision == "routed"
                self._line(
                    (
                        f"      {'→ routed' if routed else '↺ route demoted, asking the model'} ",
                        "cyan",
                    ),
                    (one_line(typed.route, 60), "dim"),
                    (f"  {typed.confidence:.2f}", "dim"),
                )
            case Resumed():
                self._line((f"── resumed at {one_line(typed.at, 80)}", "bold magenta"))
            case ActionRetried():
                self._line(
                    ("   ↺ the interrupted action was rolled back and is retried", "magenta")
                )
            case FeedbackGiven():
                self._feedback(typed)
            case _:
                pass

    def _model_call(self, call: ModelCalled) -> None:
        self.input_tokens += call.input_tokens
        self.output_tokens += call.output_tokens
        self.cost += call.cost
        name = one_line(call.model, 60)
        if self._model and name and name != self._model:
            self._line((f"   ↑ {name} answers from now on", "yellow"))
        self._model = name or self._model
        if self._verbose:
            self._line(
                (
                    f"   model {call.purpose} ({name}): {call.input_tokens} in / "
                    f"{call.output_tokens} out, {call.duration:.2f} s",
                    "dim",
                )
            )

    def _feedback(self, feedback: FeedbackGiven) -> None:
        if feedback.doubt and not self._verbose:
            doubt = "   ? the checks passed, but the model was unsure: a second opinion"
            self._line((doubt, "yellow"))
        elif self._verbose:
            for line in feedback.text.splitlines()[:12]:
                self._line(("     │ ", "dim"), (one_line(line, 110), "dim"))
        elif feedback.no_progress:
            self._line(("   ! no progress since the last attempt", "yellow"))
