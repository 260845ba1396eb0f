"""`zerog bench planner`: its tasks are real bugs, and each variant runs through the engine
(a scripted model stands in for the local one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from builders import scripted
from zerog.bench.planner import TEXTUTIL, measure, table, tasks

ROOT = Path(__file__).resolve().parents[1]
ENV = {"PATH": "/usr/bin:/bin"}


@pytest.mark.parametrize("task", tasks(ROOT / "examples" / "local-demo" / "workspace"))
def test_each_task_fails_its_check_before_the_fix(task: object, tmp_path: Path) -> None:
    for rel, text in task.files.items():  # type: ignore[attr-defined]
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "unittest", "-q"], cwd=tmp_path, capture_output=True, check=False
    )
    assert done.returncode != 0


@pytest.mark.slow
def test_each_variant_solves_the_slug_task_with_the_right_answers() -> None:
    fixed = TEXTUTIL.replace('"-".join(words(text))', '"-".join(words(text)).lower()')
    search = '    return "-".join(words(text))\n'
    model = scripted(
        # json: the code in the plan's actions
        {
            "purpose": "plan",
            "json": {
                "steps": [
                    {
                        "intent": "lower-case the slug",
                        "actions": [
                            {"kind": "write_file", "path": "textutil.py", "content": fixed}
                        ],
                    }
                ]
            },
        },
        # blocks: the plan names the file, the code comes whole
        {"purpose": "plan", "json": {"steps": [{"intent": "fix", "files": ["textutil.py"]}]}},
        {"purpose": "code", "text": f"```python\n{fixed}```\n"},
        # edits: SEARCH/REPLACE asked for and given
        {"purpose": "plan", "json": {"steps": [{"intent": "fix", "files": ["textutil.py"]}]}},
        {
            "purpose": "code",
            "text": f"<<<<<<< SEARCH\n{search}=======\n{search[:-1]}.lower()\n>>>>>>> REPLACE\n",
        },
    )
    (slug,) = [t for t in tasks(None) if t.name == "slug-case"]
    runs = measure(
        model, [slug], ["json", "blocks", "edits"], sandbox="local", iterations=1, environ=ENV
    )
    assert [(r.variant, r.solved, r.model_calls) for r in runs] == [
        ("json", True, 1),
        ("blocks", True, 2),
        ("edits", True, 2),
    ]
    assert [r.calls for r in runs] == ["plan", "plan,code", "plan,code"]
    assert "SEARCH" in model.requests[-1].messages[-1].content  # edits were asked for
    assert "| blocks | 1/1 | 2 |" in table(runs, ["json", "blocks", "edits"])
