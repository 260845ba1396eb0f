"""Where a batch's goals run: a process pool on this machine, or Ray tasks.

Both take tasks as JSON strings and hand back outcomes as JSON strings (see
``worker.py``), and both retry a goal whose worker died: the retry resumes the goal's
run from the store, so nothing it already did runs again. A goal whose workers keep
dying is given up after ``retries`` retries (``on_lost``); the batch goes on.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool

from zerog.batch.worker import goal_in_process, init_process
from zerog.errors import ConfigError
from zerog.text import one_line

OnDone = Callable[[str], None]
OnLost = Callable[[int, str], None]
EXECUTORS = ("local", "ray")
RAY_WITH_TOKENS = (2, 52)  # the first Ray with token authentication (RAY_AUTH_MODE=token)


def run_local(
    tasks: Mapping[int, str],
    *,
    jobs: int,
    model: str,
    base_dir: str,
    retries: int,
    attempts: Callable[[int], int],
    on_done: OnDone,
    on_lost: OnLost,
) -> None:
    """Run ``tasks`` (goal index -> task JSON) in a pool of ``jobs`` spawned processes,
    each of which loads ``model`` once.

    When a worker dies, the standard pool breaks and fails every goal it holds; the
    goals not yet finished are then given to a fresh pool, and those that had started
    resume their runs. ``attempts(index)`` tells how often a goal was started."""
    pending = dict(tasks)
    context = multiprocessing.get_context("spawn")
    while pending:
        before = sum(attempts(i) for i in pending)
        finished = 0
        broken: list[str] = []
        pool = ProcessPoolExecutor(
            max_workers=min(jobs, len(pending)),
            mp_context=context,
            initializer=init_process,
            initargs=(model, base_dir),
        )
        try:
            futures: dict[Future[str], int] = {
                pool.submit(goal_in_process, task): index for index, task in pending.items()
            }
            for future in as_completed(futures):
                index = futures[future]
                try:
                    outcome = future.result()
                except BrokenProcessPool as exc:
                    broken.append(str(exc))
                    continue
                except Exception as exc:  # the worker could not even record the goal
                    pending.pop(index)
                    on_lost(index, f"{type(exc).__name__}: {one_line(str(exc), 300)}")
                    continue
                pending.pop(index)
                finished += 1
                on_done(outcome)
        except KeyboardInterrupt:
            _stop(pool)
            raise
        pool.shutdown(wait=True)
        if not broken:
            continue
        if not finished and sum(attempts(i) for i in pending) == before:
            raise ConfigError(
                "the worker processes died before running any goal (does the model load? "
                f"try `zerog run` with the same --model): {one_line(broken[0], 300)}"
            )
        for index in list(pending):
            count = attempts(index)
            if count > retries:
                pending.pop(index)
                on_lost(index, f"its worker died {count} times")


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop the pool's workers now (their goals resume on the next run of the batch)."""
    for child in multiprocessing.active_children():
        child.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


def _version(text: str) -> tuple[int, int]:
    found = re.match(r"(\d+)\.(\d+)", text)
    return (int(found[1]), int(found[2])) if found else (0, 0)


@contextlib.contextmanager
def token_auth(
    environ: MutableMapping[str, str], ray_version: str, reload: Callable[[], None]
) -> Iterator[str]:
    """Token authentication for a Ray started here, whatever ``RAY_AUTH_MODE`` says: a
    fresh token (yielded) in the environment that Ray's processes inherit, none written
    to a file; the variables are put back as they were afterwards. ``reload`` makes Ray
    read them again (it caches them when imported). Ray binds its servers to every
    interface (it turns a loopback node address into a reachable one), so the token is
    what keeps other machines and users out. A Ray without token authentication is
    refused."""
    if _version(ray_version) < RAY_WITH_TOKENS:
        need = ".".join(map(str, RAY_WITH_TOKENS))
        raise ConfigError(
            f"Ray {ray_version} has no token authentication, so the Ray this batch would "
            f"start would run code for anyone who reaches it: pip install 'ray>={need}'"
        )
    token = secrets.token_hex(32)
    names = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
    saved = {name: environ.get(name) for name in names}
    environ.pop("RAY_AUTH_TOKEN_PATH", None)
    environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token)
    reload()
    try:
        yield token
    finally:
        for name, value in saved.items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        reload()


def _reload_ray_auth() -> None:
    """Make the imported Ray read its authentication variables again (as its own
    ``ray.init`` does when it turns token authentication on)."""
    from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def run_ray(
    tasks: Mapping[int, str],
    *,
    jobs: int,
    address: str | None,
    retries: int,
    on_done: OnDone,
    on_lost: OnLost,
) -> None:
    """Run ``tasks`` as Ray tasks, at most ``jobs`` at a time, each retried up to
    ``retries`` times when its worker dies (Ray's own ``max_retries``).

    Without ``address`` (and no Ray already initialized in this process) a local Ray
    starts with ``jobs`` CPUs and stops at the end, with token authentication
    (:func:`token_auth`); with one, the batch joins that cluster (its token is the
    cluster's business: ``RAY_AUTH_MODE`` / ``RAY_AUTH_TOKEN``, see docs/batch.md).
    Every worker must reach the same store file and workspaces."""
    try:
        import ray
        from ray.exceptions import RayError
    except ImportError:
        raise ConfigError(
            "the ray executor needs Ray: pip install 'zerog[ray]' (or use --executor local)"
        ) from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    started = not ray.is_initialized()
    local = started and not address
    auth = token_auth(os.environ, ray.__version__, _reload_ray_auth) if local else None
    with auth or contextlib.nullcontext(""):
        if started:
            try:
                ray.init(
                    address=address,
                    num_cpus=None if address else jobs,
                    include_dashboard=False,
                    log_to_driver=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or "local"
                raise ConfigError(f"cannot start or reach Ray ({where}): {exc}") from None
        remote = ray.remote(goal_in_process).options(
            num_cpus=1, max_retries=retries, retry_exceptions=False
        )
        # On the local Ray started here (``jobs`` CPUs) a second task per worker can wait,
        # queued, so that a worker finishing a goal finds the next one at hand; on a
        # cluster, ``jobs`` tasks at most are handed over at once.
        window = 2 * jobs if local else jobs
        queue = list(tasks.items())
        in_flight: dict[object, int] = {}
        try:
            while queue or in_flight:
                while queue and len(in_flight) < window:
                    index, task = queue.pop(0)
                    in_flight[remote.remote(task)] = index
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in ready:
                    index = in_flight.pop(ref)
                    try:
                        outcome = ray.get(ref)
                    except RayError as exc:
                        on_lost(index, f"its Ray task failed: {one_line(str(exc), 300)}")
                        continue
                    on_done(str(outcome))
        except KeyboardInterrupt:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            raise
        finally:
            if started:
                ray.shutdown()
