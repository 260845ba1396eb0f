"""The engine: plan, act, validate, roll back, re-plan. Which file holds what:

- ``loop.py``: :class:`~zerog.engine.loop.Engine` (``run``, ``resume``) and the loop of one
  run, read top to bottom: ``execute`` (where the result is built), ``iterate``,
  ``execute_plan``, ``run_step``. Start here.
- ``exceptions.py``: the flow by exceptions: ``StepFailed`` for a failed step, and the
  ``RunEnded`` family (``Succeeded``, ``Stuck``, ``ModelFailed``, ``Cancelled``, the
  preflight's ``NothingToDo`` and ``ChecksCannotRun``; the budget's ``BudgetExhausted``).
- ``session.py``: a run's wiring: workspace check, checks compiled once, toolchain,
  sandbox and sidecar, ``--git`` plan, state directory and workspace lock, sinks (store,
  trace), the run's record in the store.
- ``effects.py``: every side effect but model calls (snapshots, rollbacks, the sweep and
  the preflight, actions, step checks, protected files, git commit), each replayed when
  recorded.
- ``replayer.py``: a resumed run's past, read from the journal (``journal.py``) and
  decoded, and the point where the run goes live; ``zerog replay`` and the router's gate
  read recorded runs through it.
- ``preflight.py``: what the preflight found, and whether it ends the run.
- ``planning.py``: ``CachingPlanner``, the plan cache in front of the planner.
- ``stuck.py``: ``StuckDetector``, the same failed attempt again and again.
- ``coding.py``: ``StepCoder``, the code of a step's files, file by file.
"""
