"""The review app's factory: routes, static page, token check and error mapping.

``create_app(project)`` returns a Starlette application; ``bugdet review`` runs it under uvicorn,
and tests drive it with Starlette's TestClient or as a real server process. Errors a tester can
cause (a bad prompt, an unknown mask, a missing name) come back as 4xx JSON ``{"error": "..."}``
with the same one-line message the CLI would print, which the page shows next to the control
that caused it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bugdet.errors import BugdetError, ConfigError, InputError
from bugdet.project import Project
from bugdet.review.api import clusters, flags, frames, geometry, history, map as map_api, text
from bugdet.review.auth import TokenMiddleware
from bugdet.review.state import NotFound, ReviewState
from bugdet.segment.prompts import FrameFillingMaskError

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


async def index(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def _bugdet_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, FrameFillingMaskError):
        status = 409  # valid request, but it needs the tester's explicit confirmation
    else:
        status = 400 if isinstance(exc, (InputError, ConfigError)) else 422
    return JSONResponse({"error": str(exc)}, status_code=status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("review app: %s %s failed", request.method, request.url.path)
    return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the server log"}, status_code=500)


def create_app(project: Project, token: str | None = None, allowed_hosts: list[str] | None = None) -> Starlette:
    """The app for ``project``; ``allowed_hosts`` (the CLI passes the localhost names when bound to
    localhost) refuses requests addressed to any other host name, which stops DNS-rebinding pages."""
    state = ReviewState(project, token)
    routes = [
        Route("/", index),
        *clusters.routes, *map_api.routes, *text.routes, *frames.routes, *geometry.routes, *flags.routes, *history.routes,
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[*([Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)] if allowed_hosts else []),
                    Middleware(TokenMiddleware, token=state.token)],
        exception_handlers={BugdetError: _bugdet_error, HTTPException: _http_error, Exception: _unexpected},
    )
    app.state.review = state
    return app
