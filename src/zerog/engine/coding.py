"""The code of a step's files, asked of the model file by file (``worker.code``), with
the current text of each file it changes."""

from __future__ import annotations

from zerog import coder, worker
from zerog import context as ctx
from zerog.beneath import read_beneath
from zerog.engine.effects import Effects
from zerog.models.base import Model
from zerog.sandbox.files import PathEscape
from zerog.text import sanitize
from zerog.types import MAX_ACTIONS_PER_STEP, Action, Observation, Plan, Status, WriteFileAction


class StepCoder:
    """Writes the code of a step's ``files`` with ``model``; a file no action may write
    (a protected one, see :meth:`Effects.refusal`) gets no code call."""

    def __init__(self, model: Model, effects: Effects, *, whole_chars: int) -> None:
        self.model = model
        self.effects = effects
        self.rec = effects.rec
        self.workspace = effects.goal.workspace
        self.redactor = effects.redactor
        # Files up to this many characters are asked for whole, larger ones by SEARCH/REPLACE.
        self.whole_chars = whole_chars

    def code(
        self, iteration: int, context: ctx.Context, plan: Plan, index: int
    ) -> tuple[Action, ...] | Observation:
        """The actions that write step ``index``'s files, or (the model's code stayed
        unusable after its re-asks) an error observation with the account."""
        step = plan.steps[index]
        room = MAX_ACTIONS_PER_STEP - len(step.actions)
        allowed = []
        for path in step.files:  # no code call for a file no action could write
            refused = self.effects.refusal(WriteFileAction(path=path, content=""))
            if refused is None:
                allowed.append(path)
            else:
                self.rec.emit(
                    "code_skipped",
                    iteration=iteration,
                    step=index,
                    path=path,
                    reason=refused.stderr,
                )
        if not allowed:
            if step.actions:
                return ()
            self.rec.emit("code_failed", iteration=iteration, step=index, reason="protected")
            return Observation(
                status=Status.ERROR,
                stderr=" ".join(
                    o.stderr
                    for o in (
                        self.effects.refusal(WriteFileAction(path=p, content=""))
                        for p in step.files
                    )
                    if o is not None
                ),
            )
        if len(allowed) < len(step.files):
            narrowed = step.model_copy(update={"files": tuple(allowed)})
            plan = plan.model_copy(
                update={"steps": (*plan.steps[:index], narrowed, *plan.steps[index + 1 :])}
            )
        try:
            return worker.code(
                self.model,
                context,
                plan,
                index,
                self.read_current,
                whole_chars=self.whole_chars,
                room=room,
            )
        except coder.CodeAnswerError as exc:
            self.rec.emit("code_failed", iteration=iteration, step=index, reason=str(exc))
            return Observation(status=Status.ERROR, stderr=str(exc))

    def read_current(self, path: str) -> coder.FileText:
        """A workspace file as it is now, for a code call: sanitized and redacted like
        the context's files."""
        try:
            data = read_beneath(self.workspace, path, coder.MAX_CODE_FILE_BYTES)
        except FileNotFoundError:
            return coder.FileText(None)
        except (OSError, PathEscape) as exc:
            return coder.FileText(None, problem=f"it cannot be read ({exc})")
        if data is None:
            return coder.FileText(None, problem="it is not a regular file")
        if len(data) > coder.MAX_CODE_FILE_BYTES:
            return coder.FileText(None, problem="it is too large to change by a model")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return coder.FileText(None, problem="it is not UTF-8 text")
        return coder.FileText(self.redactor.text(sanitize(text)), crlf="\r\n" in text)
