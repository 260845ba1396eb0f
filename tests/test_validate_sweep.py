"""The sweep: parallel execution, `after` ordering, result order, flaky detection."""

from __future__ import annotations

import itertools
import os
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

import pytest

from zerog.sandbox.base import Limits
from zerog.sandbox.local import LocalSandbox
from zerog.types import (
    CheckResult,
    CommandCheck,
    Observation,
    PredicateCheck,
    SchemaCheck,
    Status,
    TestsCheck,
)
from zerog.validate.compile import compile_checks
from zerog.validate.sidecar import (
    RESULT_MARK,
    GuestProgram,
    PythonRunner,
    SandboxPython,
    make_sidecar,
    parse_batch,
)
from zerog.validate.sweep import run_one, sweep

LOCAL = LocalSandbox({"PATH": os.environ["PATH"]})
LIMITS = Limits(timeout=20)


def rendezvous(meeting: Path, me: int, count: int) -> str:
    """A command that passes only if ``count`` such commands run at the same time."""
    return (
        f"touch {meeting}/{me}; for _ in $(seq 60); do "
        f'[ "$(ls {meeting} | wc -l)" -ge {count} ] && exit 0; sleep 0.02; done; exit 1'
    )


def test_independent_checks_run_in_parallel(workspace: Path, tmp_path: Path) -> None:
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    checks = [rendezvous(meeting, i, 3) for i in range(3)]
    verdict = sweep(checks, workspace, LOCAL, LIMITS, jobs=3, rerun_failures=False)
    assert verdict.passed, [r.observation for r in verdict.results]


@pytest.mark.slow
def test_jobs_bound_the_checks_running_at_once(workspace: Path, tmp_path: Path) -> None:
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    checks = [rendezvous(meeting, i, 3) for i in range(3)]
    verdict = sweep(checks, workspace, LOCAL, LIMITS, jobs=2, rerun_failures=False)
    assert not verdict.passed  # the first two never meet a third


def test_after_orders_checks_and_a_failed_prerequisite_skips(workspace: Path) -> None:
    checks = [
        CommandCheck(name="build", command="sleep 0.3; echo built > out.txt"),
        CommandCheck(name="use", command="grep -q built out.txt", after=("build",)),
        CommandCheck(name="broken", command="exit 1"),
        CommandCheck(name="needs broken", command="true", after=("broken",)),
        CommandCheck(name="needs skipped", command="true", after=("needs broken",)),
    ]
    seen: list[str] = []
    verdict = sweep(checks, workspace, LOCAL, LIMITS, on_result=lambda r: seen.append(r.name))
    passed = {r.name: r.passed for r in verdict.results}
    assert passed == {
        "build": True,
        "use": True,
        "broken": False,
        "needs broken": False,
        "needs skipped": False,
    }
    skipped = verdict.results[3].observation
    assert skipped.status is Status.EXCEPTION
    assert "not run: check 'broken' failed first" in skipped.stderr
    assert sorted(seen) == sorted(passed), "on_result is called once per check"


def test_results_come_in_declaration_order(workspace: Path) -> None:
    checks = ["sleep 0.4; echo slow", "echo fast", "sleep 0.2; echo middle"]
    finished: list[CheckResult] = []
    verdict = sweep(checks, workspace, LOCAL, LIMITS, jobs=3, on_result=finished.append)
    assert [r.observation.stdout.strip() for r in verdict.results] == ["slow", "fast", "middle"]
    assert [r.observation.stdout.strip() for r in finished] == ["fast", "middle", "slow"]


def counting(counter: Path, passes_from: int) -> str:
    """A command that fails until it has run ``passes_from`` times (counted outside the
    workspace, so the workspace does not change)."""
    return (
        f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n + 1)) > {counter}; "
        f"[ $n -ge {passes_from - 1} ]"
    )


def runs(counter: Path) -> int:
    return int(counter.read_text())


def test_fail_then_pass_on_an_unchanged_workspace_is_flaky(workspace: Path, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    verdict = sweep(["true", counting(counter, 2)], workspace, LOCAL, LIMITS)
    assert verdict.passed
    assert runs(counter) == 2
    flaky = verdict.results[1]
    assert flaky.passed
    assert flaky.flaky
    assert verdict.flaky == (flaky,)
    assert verdict.failures == ()


def test_a_rerun_that_changes_the_workspace_is_not_flaky(workspace: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran-once"
    command = (
        f"if [ -f {marker} ]; then touch generated.txt; exit 0; else touch {marker}; exit 1; fi"
    )
    verdict = sweep([command], workspace, LOCAL, LIMITS)
    assert (workspace / "generated.txt").exists(), "the re-run happened"
    assert not verdict.passed
    assert verdict.flaky == ()


def test_the_state_hash_decides(workspace: Path, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    ticks = itertools.count()
    verdict = sweep(
        [counting(counter, 2)], workspace, LOCAL, LIMITS, state_hash=lambda: str(next(ticks))
    )
    assert runs(counter) == 2
    assert not verdict.passed, "a changing state hash must rule out flakiness"


def test_a_real_failure_stays_a_failure(workspace: Path, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    verdict = sweep([counting(counter, 99)], workspace, LOCAL, LIMITS)
    assert runs(counter) == 2
    assert not verdict.passed
    assert verdict.failures[0].flaky is False


def test_reruns_can_be_turned_off_and_timeouts_are_not_rerun(
    workspace: Path, tmp_path: Path
) -> None:
    counter = tmp_path / "count"
    verdict = sweep([counting(counter, 2)], workspace, LOCAL, LIMITS, rerun_failures=False)
    assert runs(counter) == 1
    assert not verdict.passed
    slow = tmp_path / "slow"
    hang = f"echo x >> {slow}; sleep 5"
    verdict = sweep([hang], workspace, LOCAL, Limits(timeout=0.3))
    assert verdict.results[0].observation.status is Status.TIMEOUT
    assert slow.read_text() == "x\n", "a timed-out check was run again"


def test_a_compiled_plan_is_reused_and_run_one_serves_step_checks(
    workspace: Path, tmp_path: Path
) -> None:
    plan = compile_checks(["test -f app.py", CommandCheck(command="grep -q 41 app.py")])
    for _ in range(2):
        assert sweep(plan, workspace, LOCAL, LIMITS).passed
    counter = tmp_path / "count"
    result = run_one(counting(counter, 2), workspace, LOCAL, LIMITS)
    assert result.passed
    assert result.flaky
    assert not run_one("test -f missing.txt", workspace, LOCAL, LIMITS).passed


class ThreadRecorder:
    """A real sidecar that notes which thread ran each program."""

    def __init__(self) -> None:
        self.inner = SandboxPython(LOCAL, sys.executable)
        self.threads: list[int] = []

    @property
    def name(self) -> str:
        return "recording"

    def run_python(
        self,
        program: GuestProgram,
        workspace: Path,
        limits: Limits,
        *,
        nonce: str,
        env: Mapping[str, str],
    ) -> Observation:
        self.threads.append(threading.get_ident())
        return self.inner.run_python(program, workspace, limits, nonce=nonce, env=env)


def test_one_job_runs_in_the_callers_thread(workspace: Path) -> None:
    # Sandboxes may tie a helper process's life to the thread that started it.
    checks = [PredicateCheck(python=f"{i} == {i}") for i in range(3)]
    recorder = ThreadRecorder()
    assert sweep(checks, workspace, LOCAL, LIMITS, jobs=1, sidecar=recorder).passed
    assert recorder.threads == [threading.get_ident()] * 3
    recorder.threads.clear()
    assert sweep(checks, workspace, LOCAL, LIMITS, jobs=2, sidecar=recorder).passed
    assert threading.get_ident() not in recorder.threads


@pytest.mark.slow
def test_a_flaky_pytest_test_is_flaky_despite_pytests_cache(
    workspace: Path, tmp_path: Path
) -> None:
    counter = tmp_path / "runs"
    (workspace / "test_flaky.py").write_text(
        "from pathlib import Path\n\n"
        "def test_sometimes():\n"
        f"    counter = Path({str(counter)!r})\n"
        "    runs = int(counter.read_text()) if counter.exists() else 0\n"
        "    counter.write_text(str(runs + 1))\n"
        "    assert runs >= 1, 'fails the first time only'\n"
    )
    suite = TestsCheck(command=f"{sys.executable} -m pytest -q")  # the cache provider is on
    verdict = sweep([suite], workspace, LOCAL, LIMITS)
    assert counter.read_text() == "2"
    assert (workspace / ".pytest_cache").is_dir()
    assert verdict.passed
    assert [r.name for r in verdict.flaky] == [suite.label]


class CountingSidecar:
    """Counts programs; can fail the first one as a timed-out sidecar would."""

    name = "counting"

    def __init__(self, inner: PythonRunner, fail_first: bool = False) -> None:
        self.inner = inner
        self.fail_first = fail_first
        self.programs: list[GuestProgram] = []

    def run_python(
        self,
        program: GuestProgram,
        workspace: Path,
        limits: Limits,
        *,
        nonce: str,
        env: Mapping[str, str],
    ) -> Observation:
        self.programs.append(program)
        if self.fail_first and len(self.programs) == 1:
            return Observation(status=Status.TIMEOUT, stderr="[zerog: killed after 1 s timeout]")
        return self.inner.run_python(program, workspace, limits, nonce=nonce, env=env)


def schema_checks(workspace: Path) -> list[SchemaCheck]:
    schema = {"type": "object", "required": ["port"], "properties": {"port": {"type": "integer"}}}
    (workspace / "good.json").write_text('{"port": 80}')
    (workspace / "bad.json").write_text('{"port": "80"}')
    (workspace / "good.yaml").write_text("port: 8080\n")
    checks = [
        SchemaCheck.model_validate({"path": p, "schema": schema, "name": p})
        for p in ("good.json", "bad.json", "good.yaml")
    ]
    waits = {"path": "good.json", "schema": schema, "name": "later", "after": ["good.json"]}
    return [*checks, SchemaCheck.model_validate(waits)]


@pytest.mark.isolation  # the WASM sidecar
@pytest.mark.parametrize("jobs", [1, 2])
def test_independent_schema_checks_share_one_sidecar_run(workspace: Path, jobs: int) -> None:
    checks = schema_checks(workspace)
    plan = compile_checks(checks)
    assert plan.batch is not None
    assert plan.batch.members == (0, 1, 2)  # "later" waits for another check: not batched
    wasm = make_sidecar("wasm", LOCAL, {"PATH": os.environ["PATH"]}, environ=os.environ)
    counting = CountingSidecar(wasm)
    verdict = sweep(plan, workspace, LOCAL, LIMITS, jobs=jobs, sidecar=counting,
                    rerun_failures=False)  # fmt: skip
    assert [r.passed for r in verdict.results] == [True, False, True, True]
    assert len(counting.programs) == 2  # the batch, then "later" on its own
    bad = verdict.results[1].observation
    assert bad.exit_code == 1
    assert '$.port: "80" is not of type integer' in bad.stderr
    assert verdict.results[0].observation.stdout == "good.json: valid\n"


def test_a_failed_batch_falls_back_to_one_run_per_check(workspace: Path) -> None:
    checks = schema_checks(workspace)[:3]
    counting = CountingSidecar(SandboxPython(LOCAL, sys.executable), fail_first=True)
    verdict = sweep(checks, workspace, LOCAL, LIMITS, sidecar=counting, rerun_failures=False)
    assert [r.passed for r in verdict.results] == [True, False, True]
    assert len(counting.programs) == 4  # the batch that timed out, then each check


def test_batch_output_is_parsed_strictly() -> None:
    good = f"{RESULT_MARK}(0, 1, 'out', 'err\\\\n')"
    lines = [
        good,
        f"{RESULT_MARK}(5, 0, '', '')",  # no such member
        f"{RESULT_MARK}__import__('os').system('true')",  # not a literal
        f"{RESULT_MARK}(1, '0', '', '')",  # wrong types
        "noise",
    ]
    assert parse_batch("\n".join(lines), 2) == {0: (1, "out", "err\\n")}


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_flaky_prerequisite_lets_its_dependents_run(
    workspace: Path, tmp_path: Path, jobs: int
) -> None:
    counter = tmp_path / "count"
    checks = [
        CommandCheck(name="build", command=counting(counter, 2)),
        CommandCheck(name="use", command="true", after=("build",)),
        CommandCheck(name="then", command="true", after=("use",)),
        CommandCheck(name="broken", command="exit 1"),
        CommandCheck(name="held", command="true", after=("broken",)),
    ]
    seen: list[str] = []
    verdict = sweep(
        checks, workspace, LOCAL, LIMITS, jobs=jobs, on_result=lambda r: seen.append(r.name)
    )
    passed = {r.name: (r.passed, r.flaky) for r in verdict.results}
    assert passed == {
        "build": (True, True),
        "use": (True, False),
        "then": (True, False),
        "broken": (False, False),
        "held": (False, False),
    }
    assert sorted(seen) == sorted(passed), "each check is reported exactly once"
