"""Request plumbing shared by the API modules: parsing, validation, and running work off the event loop.

Handlers are plain functions ``work(state, args) -> dict | Response`` run in the thread pool, so
database commits and image work never block the server's event loop, and a decision is
committed before :func:`json_endpoint` builds the response. Any :class:`BugdetError` a handler
raises becomes a 4xx JSON ``{"error": message}`` (see :mod:`bugdet.review.app`).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bugdet.errors import InputError
from bugdet.review.state import ReviewState

MAX_BODY = 1 << 20
WHO_PATTERN = re.compile(r"^[\w .@'-]{1,64}$")


@dataclass
class Args:
    """Path parameters, query string and JSON body of one request, with typed accessors."""

    path: dict[str, Any]
    query: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)

    def _raw(self, name: str) -> Any:
        for source in (self.path, self.body, self.query):
            if name in source and source[name] is not None and source[name] != "":
                return source[name]
        return None

    def int(self, name: str, default: int | None = None, lo: int | None = None, hi: int | None = None) -> int:
        raw = self._raw(name)
        if raw is None:
            if default is None:
                raise InputError(f"missing {name!r} (an integer)")
            return default
        if isinstance(raw, bool):
            raise InputError(f"{name!r} must be an integer, got {raw!r}")
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise InputError(f"{name!r} must be an integer, got {raw!r}") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise InputError(f"{name!r} must be between {lo} and {hi}, got {value}")
        return value

    def optional_int(self, name: str) -> int | None:
        return None if self._raw(name) is None else self.int(name)

    def float(self, name: str, default: float | None = None) -> float | None:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise InputError(f"{name!r} must be a number, got {raw!r}") from None
        if not math.isfinite(value):
            raise InputError(f"{name!r} must be a finite number, got {raw!r}")
        return value

    def str(self, name: str, default: str | None = None, choices: tuple[str, ...] | None = None) -> str:
        raw = self._raw(name)
        if raw is None:
            if default is None:
                raise InputError(f"missing {name!r}" + (f" (one of {', '.join(choices)})" if choices else ""))
            return default
        if not isinstance(raw, str):
            raise InputError(f"{name!r} must be text, got {raw!r}")
        if choices is not None and raw not in choices:
            raise InputError(f"{name!r} must be one of {', '.join(choices)}, got {raw!r}")
        return raw

    def who(self) -> str:
        """The tester's name, as typed on the page; stored with every decision."""
        who = self.str("who", "").strip()
        if not who:
            raise InputError("enter your name first (it is stored with every decision)")
        if not WHO_PATTERN.match(who):
            raise InputError("names may use letters, digits, spaces and . @ ' - (at most 64 characters)")
        return who


async def read_args(request: Request) -> Args:
    body: dict[str, Any] = {}
    if request.method in ("POST", "PUT", "DELETE"):
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise InputError(f"request body over {MAX_BODY} bytes")
        if raw.strip():
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                # A JSON content type makes browsers ask before sending cross-site, so another web
                # page open in the tester's browser cannot post decisions to this server.
                raise InputError("send the request body as JSON (Content-Type: application/json)")
            try:
                body = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"request body is not valid JSON: {exc}") from None
            if not isinstance(body, dict):
                raise InputError("request body must be a JSON object")
    return Args(dict(request.path_params), dict(request.query_params), body)


Work = Callable[[ReviewState, Args], Any]


def endpoint(work: Work) -> Callable[[Request], Any]:
    """Wrap ``work`` as a Starlette endpoint: parse, run in the thread pool, answer JSON (or a Response)."""

    async def handle(request: Request) -> Response:
        args = await read_args(request)
        result = await run_in_threadpool(work, request.app.state.review, args)
        if isinstance(result, Response):
            return result
        return JSONResponse(result)

    handle.__name__ = work.__name__
    handle.__doc__ = work.__doc__
    return handle


def png_response(data: bytes, cache_seconds: int = 0) -> Response:
    headers = {"Cache-Control": f"private, max-age={cache_seconds}" if cache_seconds else "no-store"}
    return Response(data, media_type="image/png", headers=headers)
