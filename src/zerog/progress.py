"""Live progress in a terminal: an event sink that prints the loop as it happens.

All text that came from a model or a command is sanitized and printed as plain text
(never as rich markup), so it cannot restyle or take over the terminal.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.status import Status
from rich.text import Text

from zerog.events import Event
from zerog.text import one_line


def _get(data: Mapping[str, object], key: str, default: object = "") -> object:
    return data.get(key, default)


def _action_label(action: object) -> str:
    if not isinstance(action, Mapping):
        return "?"
    kind = action.get("kind")
    if kind == "shell":
        return f"$ {action.get('command', '')}"
    if kind == "write_file":
        return f"write {action.get('path', '')}"
    return f"edit {action.get('path', '')}"


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


def _records(value: object) -> list[dict[str, str]]:
    """A list of flat records from an event (the store is a file: anything else is
    skipped)."""
    if not isinstance(value, list):
        return []
    return [{str(k): str(v) for k, v in r.items()} for r in value if isinstance(r, Mapping)]


def _tail_lines(observation: object, count: int) -> list[str]:
    """The last non-empty output lines of an observation event, stderr first."""
    if not isinstance(observation, Mapping):
        return []
    for stream in ("stderr", "stdout"):
        text = str(observation.get(stream, ""))
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

    def _preflight(self, d: Mapping[str, object]) -> None:
        """What the preflight concluded (its checks are printed as they finish)."""
        outcome = d.get("outcome")
        if outcome == "passed":
            self._line(("   ✓ nothing to do: the checks already pass", "green"))
            return
        if outcome == "failed":
            self._line(("   the checks fail: their output is the first plan's feedback", ""))
            if self._verbose:
                for line in str(d.get("feedback", "")).splitlines()[:12]:
                    self._line(("     │ ", "dim"), (one_line(line, 110), "dim"))
            return
        refusals = d.get("cannot_run")
        for refusal in refusals if isinstance(refusals, list) else []:
            if isinstance(refusal, Mapping):  # the cause and the fix are in the summary
                self._line(
                    ("   ✗ cannot run at all: ", "bold red"),
                    (one_line(str(refusal.get("check")), 90), ""),
                )

    def _sandbox_binds(self, d: Mapping[str, object]) -> None:
        """What the sandbox sees besides the workspace: with --verbose and in `zerog show`
        (not live without it); what could not be bound, always."""
        if self._verbose or not self._live:
            for bind in _records(d.get("binds")):
                where = bind.get("source", "")
                if bind.get("dest") != where:
                    where = f"{where} at {bind.get('dest', '')}"
                self._line(
                    (f"   ⊕ sandbox sees {bind.get('mode', 'ro')} ", "dim"),
                    (one_line(where, 90), ""),
                    (f"  ({one_line(bind.get('why', ''), 60)})", "dim"),
                )
            paths = d.get("path")
            if isinstance(paths, list) and paths:
                shown = one_line(":".join(str(p) for p in paths), 100)
                self._line(("   ⊕ PATH starts with ", "dim"), (shown, ""))
        for skipped in _records(d.get("skipped")):
            self._line(
                ("   ! not shown to the sandbox: ", "yellow"),
                (one_line(skipped.get("path", ""), 70), ""),
                (f" ({one_line(skipped.get('why', ''), 40)}): ", "dim"),
                (one_line(skipped.get("reason", ""), 100), "dim"),
            )

    def emit(self, event: Event) -> None:
        d = event.data
        kind = event.kind
        phase = _PHASES.get(kind)
        if kind == "iteration_started":
            self._iteration = int(str(d["iteration"]))
        if kind == "run_finished":
            self.close()
        elif phase is not None:
            self._phase(phase)
        if kind == "run_started":
            self._line(
                (f"zerog run {event.run_id}", "bold"),
                (f"  model {one_line(str(d['model']), 60)}", "dim"),
                (f"  sandbox {d['sandbox']}", "dim"),
            )
        elif kind == "sandbox_binds":
            self._sandbox_binds(d)
        elif kind == "iteration_started":
            self._line(
                (f"── iteration {d['iteration']} ", "bold cyan"),
                (f"· {self.input_tokens:,} in / {self.output_tokens:,} out tokens", "dim"),
            )
        elif kind == "model_call":
            self.input_tokens += int(str(_get(d, "input_tokens", 0)))
            self.output_tokens += int(str(_get(d, "output_tokens", 0)))
            self.cost += float(str(_get(d, "cost", 0.0)))
            name = one_line(str(d.get("model", "")), 60)
            if self._model and name and name != self._model:
                self._line((f"   ↑ {name} answers from now on", "yellow"))
            self._model = name or self._model
            if self._verbose:
                self._line(
                    (
                        f"   model {d['purpose']} ({name}): {d['input_tokens']} in / "
                        f"{d['output_tokens']} out, {float(str(d['duration'])):.2f} s",
                        "dim",
                    )
                )
        elif kind == "plan":
            steps = d["steps"]
            count = len(steps) if isinstance(steps, list) else 0
            self._line((f"   plan: {count} step{'s' if count != 1 else ''}", ""))
        elif kind == "step_started":
            self._line(
                (f"   {int(str(d['step'])) + 1}. ", "bold"), (one_line(str(d["intent"]), 100), "")
            )
        elif kind == "action":
            self._pending = one_line(_action_label(d["action"]), 90)
        elif kind == "code_skipped":
            self._line(
                ("      - no code asked for ", "yellow"),
                (one_line(str(d.get("path", "")), 80), ""),
                (": it is protected", "dim"),
            )
        elif kind == "code_failed":
            self._line(("      ✗ no usable code: ", "red"), (one_line(str(d["reason"]), 100), ""))
        elif kind == "observation":
            ok = d["status"] == "success"
            mark, style = ("✓", "green") if ok else ("✗", "red")
            detail = f" {d['status']}" if not ok else ""
            if d.get("exit_code") not in (None, 0):
                detail += f" (exit {d['exit_code']})"
            self._line(
                (f"      {mark} ", style),
                (self._pending, ""),
                (f"{detail}  {float(str(d['duration'])) * 1000:.0f} ms", "dim"),
            )
        elif kind == "step_check":
            ok = bool(d["passed"])
            self._line(
                (f"      {'✓' if ok else '✗'} step check ", "green" if ok else "red"),
                (one_line(str(d["command"]), 80), ""),
                ("  (flaky: passed on its re-run)" if d.get("flaky") else "", "yellow"),
            )
        elif kind == "check":
            ok = bool(d["passed"])
            self._line(
                (f"   {'✓' if ok else '✗'} check ", "green" if ok else "red"),
                (one_line(str(d["name"]), 80), ""),
                ("  (flaky: passed on its re-run)" if d.get("flaky") else "", "yellow"),
            )
            if not ok:
                for line in _tail_lines(d.get("observation"), 3):
                    self._line(("     │ ", "dim"), (one_line(line, 110), "dim"))
        elif kind == "validation_started" and d.get("iteration") == 0:
            self._line(
                ("── preflight ", "bold cyan"),
                ("· the checks on the untouched workspace, before any model call", "dim"),
            )
        elif kind == "preflight":
            self._preflight(d)
        elif kind == "rollback" and d.get("iteration") == 0 and not d.get("final"):
            changed = int(str(d.get("written", 0))) + int(str(d.get("removed", 0)))
            if changed:
                self._line(
                    (
                        f"   ↺ what the checks wrote was rolled back ({d['written']} restored, "
                        f"{d['removed']} removed)",
                        "yellow",
                    )
                )
        elif kind == "rollback":
            self._line(
                (f"   ↺ rolled back ({d['written']} restored, {d['removed']} removed)", "yellow")
            )
        elif kind == "protected_restored":
            paths = d.get("paths")
            shown = [str(p) for p in paths[:4]] if isinstance(paths, list) else []
            more = int(str(d.get("count", len(shown)))) - len(shown)
            listed = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
            self._line(
                ("   ↺ protected files put back before the checks: ", "yellow"),
                (one_line(listed, 90), ""),
            )
        elif kind == "route" and d.get("decision") in ("routed", "demoted"):
            routed = d.get("decision") == "routed"
            self._line(
                (f"      {'→ routed' if routed else '↺ route demoted, asking the model'} ", "cyan"),
                (one_line(str(d.get("route", "")), 60), "dim"),
                (f"  {float(str(d.get('confidence', 0.0))):.2f}", "dim"),
            )
        elif kind == "resumed":
            self._line((f"── resumed at {one_line(str(d.get('at', '')), 80)}", "bold magenta"))
        elif kind == "action_retried":
            self._line(("   ↺ the interrupted action was rolled back and is retried", "magenta"))
        elif kind == "feedback" and d.get("doubt") is True and not self._verbose:
            doubt = "   ? the checks passed, but the model was unsure: a second opinion"
            self._line((doubt, "yellow"))
        elif kind == "feedback" and self._verbose:
            for line in str(d["text"]).splitlines()[:12]:
                self._line(("     │ ", "dim"), (one_line(line, 110), "dim"))
        elif kind == "feedback" and int(str(d.get("no_progress", 0))):
            self._line(("   ! no progress since the last attempt", "yellow"))
