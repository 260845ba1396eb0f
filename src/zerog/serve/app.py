"""The FastAPI application: the JSON API under ``/api``, server-sent events of a run, and
the dashboard (static files written for zerog, no build step, nothing from a CDN).

Every error answer is ``{"error": ..., "details": [...]}`` with a 4xx status; an
unexpected exception is logged by the server and answered with a bare 500, never a stack
trace. Every ``/api`` request needs the server's bearer token. No CORS headers are sent,
so browsers keep other origins out; a state-changing request a browser sends for another
site's page is refused (:mod:`zerog.serve.guard`), and so is a body above the cap. A
server bound to loopback answers only requests addressed to a loopback host name (a
DNS-rebinding page cannot reach it through the user's browser).
"""

import asyncio
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Annotated

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from zerog import __version__
from zerog.event_catalog import RunFinished, kind_of
from zerog.serve.auth import is_loopback
from zerog.serve.guard import MAX_BODY, BodyLimit, cross_site
from zerog.serve.jobs import QueueFull
from zerog.serve.schema import (
    ErrorBody,
    Health,
    RunDetail,
    RunDiff,
    RunList,
    RunRequest,
    RunSummary,
)
from zerog.serve.service import RequestError, Service
from zerog.text import one_line

RUN_ID = r"^[A-Za-z0-9_-]{1,64}$"
QUERY_PARAMETERS = {"limit", "after"}  # every query parameter the API takes
WAKE_SECONDS = 0.02  # how often a follower between polls looks whether its run is over
STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "A bearer token is required."},
    404: {"model": ErrorBody, "description": "No such run."},
    422: {"model": ErrorBody, "description": "The request is invalid."},
}
CHANGES: dict[int | str, dict[str, object]] = {  # what a state-changing request may also get
    **ERRORS,
    403: {"model": ErrorBody, "description": "Sent by a browser for a page of another site."},
    413: {"model": ErrorBody, "description": "The body is larger than the server accepts."},
}


@dataclass(frozen=True)
class Settings:
    token: str  # every /api request must carry it (docs/serve.md)
    loopback_only: bool = True  # bound to loopback: refuse requests for other host names
    max_body: int = MAX_BODY
    poll_seconds: float = 0.25
    keepalive_seconds: float = 15.0


def _error(status: int, message: str, details: list[str] | None = None) -> JSONResponse:
    body = ErrorBody(error=one_line(message, 2000), details=details or [])
    return JSONResponse(body.model_dump(), status_code=status)


def _asset(name: str) -> bytes:
    return (resources.files("zerog.serve") / "static" / name).read_bytes()


def create_app(service: Service, settings: Settings) -> FastAPI:
    app = FastAPI(
        title="zerog",
        version=__version__,
        description="Submit goals to zerog's reasoning loop, watch runs live, cancel and "
        "resume them. See docs/serve.md.",
        docs_url=None,  # the interactive docs load scripts from a CDN: not served
        redoc_url=None,
    )
    bearer = HTTPBearer(auto_error=False, description="The server's token (docs/serve.md).")

    def authorize(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            raise StarletteHTTPException(
                401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        host = request.headers.get("host", "").rsplit(":", 1)[0]
        unknown = sorted(set(request.query_params) - QUERY_PARAMETERS)
        foreign = cross_site(request.method, request.headers)
        if settings.loopback_only and not is_loopback(host):
            response: Response = _error(
                421, "this server answers only requests addressed to a loopback host"
            )
        elif foreign is not None:
            response = _error(403, f"refused: a request from another site's page ({foreign})")
        elif unknown and request.url.path.startswith("/api/"):
            response = _error(422, "invalid request", [f"query: unknown parameter {unknown[0]!r}"])
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def too_large() -> Response:
        response = _error(413, f"the request body is larger than {settings.max_body} bytes")
        response.headers.update(SECURITY_HEADERS)
        return response

    app.add_middleware(BodyLimit, limit=settings.max_body, too_large=too_large)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = []
        for error in exc.errors()[:20]:
            where = ".".join(str(p) for p in error.get("loc", ()))
            details.append(one_line(f"{where}: {error.get('msg', 'invalid')}", 300))
        return _error(422, "invalid request", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body FastAPI cannot decode (not UTF-8): as invalid JSON
            return _error(422, "invalid request", ["body: not valid JSON in UTF-8"])
        response = _error(exc.status_code, str(exc.detail))
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        if exc.status_code == 405:  # every method of the path, not only the first route's
            response.headers["Allow"] = ", ".join(_methods(app, request))
        return response

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, service.paths.text(exc.message))

    @app.exception_handler(QueueFull)
    async def full(request: Request, exc: QueueFull) -> JSONResponse:
        response = _error(429, str(exc))
        response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, "internal error (see the server's log)")

    api = [Depends(authorize)]

    @app.get("/api/health", response_model=Health, dependencies=api, responses=ERRORS)
    def health() -> Health:
        return Health(
            workers=service.pool.workers, queue=service.pool.capacity, auth=bool(settings.token)
        )

    @app.post(
        "/api/runs",
        status_code=202,
        response_model=RunSummary,
        dependencies=api,
        responses={
            **CHANGES,
            409: {"model": ErrorBody, "description": "The workspace is in use."},
            429: {
                "model": ErrorBody,
                "description": "The queue is full; retry after Retry-After seconds.",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            },
        },
    )
    def submit(body: RunRequest) -> RunSummary:
        """Queue a goal; the run starts when a worker is free."""
        return service.submit(body)

    @app.get("/api/runs", response_model=RunList, dependencies=api, responses=ERRORS)
    def runs(limit: Annotated[int, Query(ge=1, le=500)] = 50) -> RunList:
        """Runs, newest first: those in the store and those queued in this server."""
        return RunList(runs=service.runs(limit))

    @app.get("/api/runs/{run_id}", response_model=RunDetail, dependencies=api, responses=ERRORS)
    def run(
        run_id: Annotated[str, Path(pattern=RUN_ID)],
        after: Annotated[int, Query(ge=0, description="Only events numbered above it.")] = 0,
    ) -> RunDetail:
        """One run and its events."""
        summary = service.summary(run_id)
        return RunDetail(run=summary, events=service.event_out(service.events(run_id, after)))

    @app.get(
        "/api/runs/{run_id}/diff",
        response_model=RunDiff,
        dependencies=api,
        responses={
            **ERRORS,
            409: {"model": ErrorBody, "description": "Not started, or its snapshots are gone."},
        },
    )
    def diff(run_id: Annotated[str, Path(pattern=RUN_ID)]) -> RunDiff:
        """What the run changed in its workspace: a unified diff per file, from the
        workspace as the run found it to the state it left (binary and large files noted,
        not shown)."""
        return service.diff(run_id)

    @app.get(
        "/api/runs/{run_id}/events",
        dependencies=api,
        response_class=StreamingResponse,
        responses={
            **ERRORS,
            200: {
                "description": "Server-sent events: one message per run event (id: its "
                "seq, data: the event as JSON), then an `end` event with the final status.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
        },
    )
    async def stream(
        request: Request,
        run_id: Annotated[str, Path(pattern=RUN_ID)],
        after: Annotated[int, Query(ge=0, description="Start after this event number.")] = 0,
    ) -> StreamingResponse:
        """Follow a run live. Reconnecting clients send Last-Event-ID (or ?after=)."""
        await asyncio.to_thread(service.summary, run_id)  # 404 before the stream starts
        last_id = request.headers.get("last-event-id", "")
        start = int(last_id) if last_id.isdigit() else after
        return StreamingResponse(
            _follow(service, settings, request, run_id, start),
            media_type="text/event-stream",
            headers={"X-Accel-Buffering": "no"},
        )

    @app.post(
        "/api/runs/{run_id}/cancel",
        status_code=202,
        response_model=RunSummary,
        dependencies=api,
        responses={**CHANGES, 409: {"model": ErrorBody, "description": "Not active here."}},
    )
    def cancel(run_id: Annotated[str, Path(pattern=RUN_ID)]) -> RunSummary:
        """Stop a run: a queued run is dropped; a running one is interrupted, its workspace
        rolled back, and it ends as `interrupted`."""
        return service.cancel(run_id)

    @app.post(
        "/api/runs/{run_id}/resume",
        status_code=202,
        response_model=RunSummary,
        dependencies=api,
        responses={
            **CHANGES,
            403: {
                "model": ErrorBody,
                "description": "Workspace outside the root, or sent for another site's page.",
            },
            409: {"model": ErrorBody, "description": "Finished, or already active."},
            429: {"model": ErrorBody, "description": "The queue is full."},
        },
    )
    def resume(run_id: Annotated[str, Path(pattern=RUN_ID)]) -> RunSummary:
        """Continue an unfinished run (one whose process died, e.g. with an earlier server)."""
        return service.resume(run_id)

    # ------------------------------------------------------------ the dashboard

    def page() -> Response:
        return Response(_asset("index.html"), media_type="text/html; charset=utf-8")

    app.add_api_route("/", page, include_in_schema=False)
    app.add_api_route("/runs/{run_id}", page, include_in_schema=False)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        kind = STATIC.get(name)
        if kind is None:
            return _error(404, "no such file")
        return Response(_asset(name), media_type=kind)

    return app


def _methods(app: FastAPI, request: Request) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE and isinstance(route, BaseRoute):
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _follow(
    service: Service, settings: Settings, request: Request, run_id: str, after: int
) -> AsyncIterator[str]:
    last = after
    quiet = 0.0
    yield "retry: 2000\n\n"
    while not await request.is_disconnected():
        summary = await asyncio.to_thread(service.summary, run_id)
        events = await asyncio.to_thread(service.events, run_id, last)
        for event in events:
            data = service.shown_data(event)
            record = {"seq": event.seq, "ts": event.ts, "kind": event.kind, "data": data}
            yield f"id: {event.seq}\ndata: {json.dumps(record, ensure_ascii=True)}\n\n"
            last = event.seq
        finished = any(e.kind == kind_of(RunFinished) for e in events)
        if finished or not summary.active:
            summary = await asyncio.to_thread(service.summary, run_id)  # its final state
            end = {"status": summary.status, "reason": summary.reason}
            yield f"event: end\ndata: {json.dumps(end, ensure_ascii=True)}\n\n"
            return
        quiet = 0.0 if events else quiet + settings.poll_seconds
        if quiet >= settings.keepalive_seconds:
            quiet = 0.0
            yield ": keepalive\n\n"
        await _nap(service, run_id, settings.poll_seconds)


async def _nap(service: Service, run_id: str, seconds: float) -> None:
    """Sleep until the next poll of the store, or until the run's job is over: its last
    events (and the end) then go out at once, not up to a poll interval later."""
    waited = 0.0
    while waited < seconds and not service.over(run_id):
        step = min(WAKE_SECONDS, seconds - waited)
        await asyncio.sleep(step)
        waited += step
