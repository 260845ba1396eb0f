"""Build the tasks of `zerog bench repos` from the pinned sdists of tasks.toml.

    python benchmarks/repos/build.py [--out .bench/repos/tasks] [--only ID ...]

Downloads each sdist once into .bench/repos/sdists (pip download, exact version, sha256
checked), creates the test venv .bench/repos/venv (from /usr/bin/python3, outside any home
directory, so the bwrap sandbox can bind it), then injects, verifies and writes every task
(see zerog.bench.repos_tasks). Same inputs, same output: manifest.json has the hashes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zerog.bench.repos_tasks import build_tasks, ensure_test_venv, parse_tasks

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, default=HERE / "tasks.toml")
    parser.add_argument("--out", type=Path, default=Path(".bench/repos/tasks"))
    parser.add_argument("--sdists", type=Path, default=Path(".bench/repos/sdists"))
    parser.add_argument("--venv", type=Path, default=Path(".bench/repos/venv"))
    parser.add_argument("--base-python", default="/usr/bin/python3")
    parser.add_argument("--only", nargs="*", default=[])
    args = parser.parse_args()
    spec = parse_tasks(args.tasks.read_text(encoding="utf-8"), str(args.tasks))
    python = ensure_test_venv(args.venv.absolute(), spec.venv_packages, args.base_python)
    report = build_tasks(
        spec,
        args.out,
        args.sdists,
        python,
        only=args.only,
        on_task=lambda task_id, verdict: print(f"{task_id}: {verdict}", flush=True),
    )
    print(f"built {len(report.built)} tasks into {args.out}; rejected {len(report.rejected)}")
    return 1 if report.rejected else 0


if __name__ == "__main__":
    sys.exit(main())
