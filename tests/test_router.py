"""Routers end to end: built-in routes, compile from a real store, route, demote on
failure with a worker retry in the same iteration, thresholds, corrupt router files, the
`zerog routes` commands. Real store file, real local sandbox, the scripted model."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from builders import acts, engine, goal, plan, scripted, shell, step, write, write_script, zerog_cli
from zerog import Goal, RunStatus
from zerog.events import Event
from zerog.journal import read_journal
from zerog.models.scripted import ScriptedModel
from zerog.replay import replay_run
from zerog.router.artifact import RouterFileError, digest_of, dumps, load, loads, save
from zerog.router.base import StepView
from zerog.router.builtin import BuiltinRouter, step_key
from zerog.router.compiled import CompiledRouter
from zerog.router.factory import make_router
from zerog.router.features import PLACEHOLDER, fill, template
from zerog.router.history import RecordedStep, store_steps
from zerog.router.learn import (
    NEVER,
    Scored,
    Settings,
    calibrate,
    compile_router,
    heldout_runs,
)
from zerog.store import Store
from zerog.structured import schema_of
from zerog.types import Plan, ShellAction, Step, TestsCheck, WriteFileAction

TEXT = "write done.txt"
CHECK = "test -f done.txt"
ENV = {"PATH": "/usr/bin:/bin"}


def events(store: Store, run_id: str, kind: str) -> list[Event]:
    return [e for e in store.events(run_id) if e.kind == kind]


# ------------------------------------------------------------------ built-in routes


def view(root: Path, *steps: Step, checks: list[object] | None = None, index: int = 0) -> StepView:
    g = Goal.model_validate({"text": "t", "workspace": root, "checks": checks or [CHECK]})
    return StepView(g, Plan(steps=steps), index)


def commands(router: BuiltinRouter, v: StepView) -> list[str]:
    decision = router.decide(v)
    assert decision.routed, decision.reason
    return [a.command for a in decision.actions if isinstance(a, ShellAction)]


def test_builtin_routes_act_on_structured_fields(tmp_path: Path) -> None:
    (tmp_path / "notes file.txt").write_text("hi\n")
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "pyproject.toml").write_text("")
    r = BuiltinRouter()
    read = Step(intent="look", op="read_file", target="notes file.txt")
    assert commands(r, view(tmp_path, read)) == ["cat -- 'notes file.txt'"]
    tests = [TestsCheck(command="python3 -m pytest -q"), CHECK]
    run_tests = Step(intent="x", op="run_tests")
    assert commands(r, view(tmp_path, run_tests, checks=tests)) == ["python3 -m pytest -q"]
    rerun = Step(intent="x", op="rerun_check", target=CHECK)
    assert commands(r, view(tmp_path, rerun, checks=tests)) == [CHECK]
    assert commands(r, view(tmp_path, Step(intent="x", op="rerun_check"))) == [CHECK]
    install = Step(intent="x", op="install_deps")
    assert commands(r, view(tmp_path, install)) == ["python3 -m pip install -r requirements.txt"]
    fmt = Step(intent="x", op="format", target="src")
    assert commands(r, view(tmp_path, fmt)) == ["python3 -m ruff format src"]
    # The free text never matters: the same words without an op are not routed.
    assert not r.decide(view(tmp_path, Step(intent="read_file notes.txt"))).routed


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (Step(intent="x", op="read_file", target="../etc/passwd"), "no file"),
        (Step(intent="x", op="read_file", target="missing.txt"), "no file"),
        (Step(intent="x", op="read_file"), "needs a target"),
        (Step(intent="x", op="run_tests"), "no test-suite check"),
        (Step(intent="x", op="rerun_check", target="nope"), "no goal check"),
        (Step(intent="x", op="install_deps"), "no dependency manifest"),
        (Step(intent="x", op="repeat_fix"), "no earlier successful run"),
    ],
)
def test_builtin_routes_decline_with_a_reason(tmp_path: Path, bad: Step, reason: str) -> None:
    decision = BuiltinRouter().decide(view(tmp_path, bad))
    assert not decision.routed
    assert reason in decision.reason


def test_repeat_fix_replays_the_last_successful_identical_step(tmp_path: Path) -> None:
    fixed = Step(intent="apply the usual fix", op="repeat_fix")
    earlier = (WriteFileAction(path="done.txt", content="ok"),)
    r = BuiltinRouter(lambda: {step_key(fixed): earlier})
    assert r.decide(view(tmp_path, fixed)).actions == earlier
    other = Step(intent="apply another fix", op="repeat_fix")
    assert not r.decide(view(tmp_path, other)).routed


@pytest.mark.model  # llama-cpp-python builds the grammar
def test_plan_schema_stays_backwards_compatible() -> None:
    old = Plan.model_validate({"steps": [{"intent": "x", "actions": []}]})
    assert old.steps[0].op is None
    new = Plan.model_validate({"steps": [{"intent": "x", "op": "read_file", "target": "a"}]})
    assert new.steps[0].op == "read_file"
    with pytest.raises(ValueError, match="op"):
        Plan.model_validate({"steps": [{"intent": "x", "op": "rm_rf"}]})
    from zerog.models.llamacpp import json_grammar_text

    grammar = json_grammar_text(schema_of(Plan))  # the local model's grammar still builds
    assert "read_file" in grammar


# ------------------------------------------------------------------ compile, route, demote

ROUTINE = step("Show the notes", check="test -s notes.txt")


def record(store: Store, tmp_path: Path, runs: int) -> None:
    """Runs whose routine step the worker does the same way every time."""
    for n in range(runs):
        root = tmp_path / f"rec{n}"
        root.mkdir()
        (root / "notes.txt").write_text(f"run {n}\n")
        model = scripted(
            plan(ROUTINE, step(f"Write done.txt for run {n}")),
            acts(shell("mkdir -p scratch && cat notes.txt")),
            acts(write("done.txt", f"{n}")),
        )
        assert engine(model, store=store, write_trace=False).run(goal(root, CHECK, text=TEXT)).ok


def test_compile_route_demote_and_retry_with_the_model(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        record(store, tmp_path, 8)
        compiled = compile_router(store_steps(store, 100), Settings(holdout=0.3))
    model = compiled.model
    assert len(model.classes) == 1  # the unique "write done.txt" steps are not routes
    assert model.classes[0].support == 8
    path = tmp_path / "router.json"
    save(model, path)
    router_file = len(path.read_bytes())
    assert router_file < 8_000

    with Store(tmp_path / "runs.db") as store:
        # Routed: the script has no answer for the routine step; the router must take it.
        root = tmp_path / "new"
        root.mkdir()
        (root / "notes.txt").write_text("new\n")
        script = scripted(plan(ROUTINE, step("Write done.txt")), acts(write("done.txt", "x")))
        router = make_router("compiled", router_file=path, store=store)
        result = engine(script, store=store, write_trace=False, router=router).run(
            goal(root, CHECK, text=TEXT)
        )
        assert result.status is RunStatus.SUCCESS, result.reason
        assert script.remaining() == 0
        decisions = [e.data["decision"] for e in events(store, result.run_id, "route")]
        assert decisions == ["routed", "model"]
        routed = events(store, result.run_id, "route")[0].data
        assert routed["router"] == "builtin+compiled"
        assert float(str(routed["confidence"])) >= model.threshold
        assert float(str(routed["ms"])) < 50

        # Demoted: notes.txt is missing, the routed `cat` fails after its mkdir; the
        # workspace is restored, the worker retries the same step in the same iteration.
        root = tmp_path / "broken"
        root.mkdir()
        script = scripted(
            plan(ROUTINE, step("Write done.txt")),
            acts(write("notes.txt", "made by the model\n")),
            acts(write("done.txt", "x")),
        )
        router = make_router("compiled", router_file=path, store=store)
        result = engine(script, store=store, write_trace=False, router=router).run(
            goal(root, CHECK, text=TEXT)
        )
        assert result.status is RunStatus.SUCCESS, result.reason
        assert result.iterations == 1
        assert script.remaining() == 0
        kinds = [
            (e.kind, e.data.get("decision"))
            for e in store.events(result.run_id)
            if e.kind in ("route", "step_failed", "step_done")
        ]
        assert kinds == [
            ("route", "routed"),
            ("step_failed", None),
            ("route", "demoted"),
            ("step_done", None),
            ("route", "model"),
            ("step_done", None),
        ]
        assert not (root / "scratch").exists()  # the routed mkdir was rolled back
        retry = [e.data["index"] for e in events(store, result.run_id, "action")]
        assert retry == [0, 1, 0]  # the worker's retry is numbered after the routed action
        journal = read_journal(store.events(result.run_id))
        assert [r["decision"] for r in journal.routes[(1, 0)]] == ["routed", "demoted"]

    # The demotion is saved in the file; the route's confidence is now halved.
    demoted = load(path)
    assert demoted.classes[0].demotions == 1
    again = CompiledRouter(demoted).decide(
        view(tmp_path / "new", Step(intent="Show the notes", check="test -s notes.txt"))
    )
    assert again.confidence < model.threshold
    assert not again.routed


# ------------------------------------------------------------------ thresholds


def recorded(run: str, intent: str, command: str, index: int = 0) -> RecordedStep:
    return RecordedStep(
        run_id=run,
        iteration=1,
        index=index,
        step=Step(intent=intent),
        n_steps=2,
        checks=(CHECK,),
        actions=(ShellAction(command=command),),
        done=True,
        run_ok=True,
        routed=False,
    )


def test_threshold_routes_consistent_steps_and_declines_ambiguous_ones(tmp_path: Path) -> None:
    steps = []
    for n in range(40):
        steps.append(recorded(f"r{n}", "Run the linter", "ruff check ."))
        # Same words, one of three commands: each is a route, none is predictable.
        steps.append(recorded(f"r{n}", "Inspect things", ("ls", "pwd", "id")[n % 3], 1))
    model = compile_router(steps, Settings(holdout=0.3)).model
    assert 0.5 <= model.threshold <= 1.0
    assert model.calibration.heldout_steps > 0
    assert model.calibration.correct == model.calibration.routed > 0
    router = CompiledRouter(model)
    lint = router.decide(view(tmp_path, Step(intent="Run the linter"), Step(intent="x")))
    assert lint.routed
    assert lint.actions == (ShellAction(command="ruff check ."),)
    vague = router.decide(view(tmp_path, Step(intent="x"), Step(intent="Inspect things"), index=1))
    assert not vague.routed
    assert vague.confidence < model.threshold
    # The same step against a stricter threshold goes to the model.
    strict = CompiledRouter(model.model_copy(update={"threshold": NEVER}))
    lint_again = strict.decide(view(tmp_path, Step(intent="Run the linter"), Step(intent="x")))
    assert not lint_again.routed
    assert "below the threshold" in lint_again.reason


def test_calibration_picks_the_lowest_threshold_that_keeps_precision() -> None:
    settings = Settings(target_precision=0.99, floor=0.5, fallback=0.9)
    scored = [Scored(0.99, 1, 1), Scored(0.95, 1, 1), Scored(0.9, 2, 0), Scored(0.8, 1, 1)]
    threshold, routed, correct, _ = calibrate(scored, settings)
    assert threshold == 0.95
    assert (routed, correct) == (2, 2)
    assert calibrate([Scored(0.99, 1, 2)], settings)[0] == NEVER
    assert calibrate([Scored(0.99, 0, 1)], settings)[0] == 0.9
    assert calibrate([Scored(0.3, 1, 1)], settings)[0] == 0.5


def test_the_held_out_share_is_exact_and_does_not_depend_on_order() -> None:
    runs = [f"run{n:02d}" for n in range(8)]
    held = heldout_runs(runs + runs[:3], 0.3)  # a run with several steps counts once
    assert len(held) == 2  # floor(0.3 * 8): a coin per run could hold out six of eight
    assert held <= set(runs)
    assert heldout_runs(reversed(runs), 0.3) == held
    assert heldout_runs(runs[:3], 0.25) == frozenset()  # too few runs: nothing held out
    assert len(heldout_runs([f"r{n}" for n in range(100)], 0.25)) == 25


def test_templates_carry_the_target_and_refuse_unsafe_ones() -> None:
    label = template((ShellAction(command="cat calc.py"),), "calc.py")
    assert PLACEHOLDER in label
    assert fill(label, "stats.py") == (ShellAction(command="cat stats.py"),)
    assert fill(label, "x; rm -rf /") is None
    assert fill(label, None) is None


# ------------------------------------------------------------------ corrupt files


def tiny_model(tmp_path: Path) -> Path:
    steps = [recorded(f"r{n}", "Run the linter", "ruff check .") for n in range(12)]
    path = tmp_path / "router.json"
    save(compile_router(steps).model, path)
    return path


def test_corrupt_or_foreign_router_files_are_refused(tmp_path: Path) -> None:
    path = tiny_model(tmp_path)
    good = json.loads(path.read_text())
    assert good["digest"] == digest_of(load(path))
    cases: dict[str, tuple[str, str]] = {
        "not json": ("{nope", "not JSON"),
        "other format": (json.dumps({"format": "x"}), "not a zerog router file"),
        "version": (json.dumps({**good, "version": 2}), "version 2"),
    }
    tampered = json.loads(path.read_text())
    tampered["router"]["threshold"] = 0.0
    cases["digest"] = (json.dumps(tampered), "digest")
    broken = json.loads(path.read_text())
    broken["router"]["bias"] = [0.0]
    body = broken["router"]
    from hashlib import sha256

    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    broken["digest"] = "sha256:" + sha256(canonical.encode()).hexdigest()
    cases["shape"] = (json.dumps(broken), "bias has 1 rows")
    for name, (text, message) in cases.items():
        with pytest.raises(RouterFileError, match=message):
            loads(text, name)
    assert loads(dumps(load(path)), "round trip") == load(path)
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    with pytest.raises(RouterFileError, match="not UTF-8"):
        load(tmp_path / "bin")
    with pytest.raises(RouterFileError, match="cannot read"):
        load(tmp_path / "missing.json")


# ------------------------------------------------------------------ the command line


zerog = functools.partial(zerog_cli, columns=160)


@pytest.mark.slow
def test_cli_routes_compile_show_and_refuse_a_bad_file(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        record(store, tmp_path, 6)
    done = zerog("routes", "compile", "--out", "r.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 routes from 12 worker steps" in done.stderr
    shown = zerog("routes", "show", "r.json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "mkdir -p scratch && cat notes.txt" in shown.stdout
    assert "threshold" in shown.stdout

    (tmp_path / "bad.json").write_text('{"format": "zerog-router", "version": 9}')
    bad = zerog("routes", "show", "bad.json", cwd=tmp_path)
    assert bad.returncode == 2
    assert "version 9" in bad.stderr
    assert "Traceback" not in bad.stderr

    root = tmp_path / "ws"
    root.mkdir()
    script = write_script(tmp_path / "s.jsonl", plan(step("x", write("done.txt", "1"))))
    common = ["run", "g", "-w", str(root), "-m", f"scripted:{script}", "-c", CHECK]
    refused = zerog(
        *common,
        "--sandbox",
        "local",
        "--router",
        "compiled",
        "--router-file",
        "bad.json",
        cwd=tmp_path,
    )
    assert refused.returncode == 2
    assert "version 9" in refused.stderr
    needs = zerog(*common, "--sandbox", "local", "--router", "compiled", cwd=tmp_path)
    assert needs.returncode == 2
    assert "--router-file" in needs.stderr
    unused = zerog(*common, "--router", "builtin", "--router-file", "r.json", cwd=tmp_path)
    assert unused.returncode == 2
    assert "only with --router compiled" in unused.stderr
    ok = zerog(
        *common,
        "--sandbox",
        "local",
        "--router",
        "compiled",
        "--router-file",
        "r.json",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr


@pytest.mark.slow
def test_bench_router_smoke(tmp_path: Path) -> None:
    from zerog.bench.router import measure

    report = measure(train=8, heldout=2, sandbox="local").as_dict()
    assert isinstance(report["steps"], int)
    assert report["steps"] > 0
    assert report["routed_accuracy"] == 1.0 or report["routed"] == 0
    assert isinstance(report["routed"], int)
    assert report["baseline_runs_ok"] == 2


def test_a_resumed_run_replays_its_route_decisions(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        record(store, tmp_path, 8)
        compiled = compile_router(store_steps(store, 100), Settings(holdout=0.3))
    path = tmp_path / "router.json"
    save(compiled.model, path)

    def script() -> ScriptedModel:
        return scripted(
            plan(ROUTINE, step("Write done.txt")),
            acts(write("notes.txt", "made by the model\n")),
            acts(write("done.txt", "x")),
        )

    root = tmp_path / "broken"
    root.mkdir()
    with Store(tmp_path / "runs.db") as store:
        router = make_router("compiled", router_file=path, store=store)
        first = engine(script(), store=store, write_trace=False, router=router).run(
            goal(root, CHECK, text=TEXT), run_id="whole"
        )
        assert first.ok
        recorded_events = store.events("whole")
        row = store.find("whole")
        # `zerog replay` gives the recorded decisions back: no divergence.
        replayed = replay_run(store, "whole", environ=ENV, workdir=tmp_path)
        assert replayed.divergences == []
        assert replayed.replay.ok
    cut = next(e.seq for e in recorded_events if e.data.get("decision") == "demoted")
    # A crash right after the demotion: the store holds the events up to it.
    with Store(tmp_path / "crashed.db") as crashed:
        crashed.create_run("whole", row.goal, row.workspace, row.spec, row.created)
        for event in recorded_events:
            if event.seq <= cut:
                crashed.emit(event)
        model = script()
        router = make_router("compiled", router_file=path, store=crashed)
        resumed = engine(model, store=crashed, write_trace=False, router=router).resume("whole")
        assert resumed.ok, resumed.reason
        assert model.remaining() == 0
        after = [e for e in crashed.events("whole") if e.seq > cut]
        assert [e.data["decision"] for e in after if e.kind == "route"] == ["model"]
        actions = [(e.data["step"], e.data["index"]) for e in after if e.kind == "action"]
        assert actions == [(0, 1), (1, 0)]  # the retry keeps its place after the route
