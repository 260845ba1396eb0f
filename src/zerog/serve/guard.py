"""Guards in front of the API: a cap on the size of a request body, and the refusal of
state-changing requests that a browser sends on behalf of a page of another site.

A browser adds ``Sec-Fetch-Site`` and ``Origin`` to the requests a page makes; the
dashboard's own requests are ``same-origin``. Clients that are not browsers (curl, a
script) send neither and are judged by their token alone.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY = 1024 * 1024
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE = frozenset({"same-origin", "none"})  # "none": typed in the address bar


def cross_site(method: str, headers: Headers) -> str | None:
    """Why a request that changes state looks sent by another site's page (None: fine)."""
    if method in SAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None and site not in SAME_SITE:
        return f"Sec-Fetch-Site is {site!r}"
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != headers.get("host", ""):
        return "its Origin is another site"
    return None


class BodyLimit:
    """ASGI middleware: a request body above ``limit`` bytes (declared, or as it arrives)
    is answered with ``too_large()`` and never reaches the app; what is read is at most
    ``limit`` bytes plus one chunk."""

    def __init__(self, app: ASGIApp, limit: int, too_large: Callable[[], Response]) -> None:
        self._app = app
        self._limit = limit
        self._too_large = too_large

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS:
            await self._app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self._limit):
            await self._too_large()(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away: nobody to answer
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._limit:
                await self._too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        given = False

        async def replay() -> Message:
            nonlocal given
            if given:
                return await receive()  # e.g. http.disconnect
            given = True
            return body

        await self._app(scope, replay, send)
