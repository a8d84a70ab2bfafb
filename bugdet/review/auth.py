"""Optional access token: header, query or cookie, so a shared machine's colleagues need the link.

With a token configured every request must carry it as ``Authorization: Bearer T``,
``X-Bugdet-Token: T``, the ``bugdet_review_token`` cookie, or ``?token=T``. Opening the page
with ``?token=T`` (the link ``bugdet review`` prints) stores the cookie and redirects to the
bare URL, so the token does not linger in the address bar or history, and the page's own
requests authenticate with the cookie. Without a token (the default, bound to localhost) all
requests pass. Every response also forbids loading anything from other origins, which is what
keeps the page working offline: it cannot depend on a CDN by accident.
"""

from __future__ import annotations

import hmac

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

COOKIE = "bugdet_review_token"
HEADER = "x-bugdet-token"
CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'"

DENIED_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>bugdet review: token needed</title></head>
<body style="font-family:sans-serif;margin:3em"><h1>This review app needs its access token</h1>
<p>Open the link printed by <code>bugdet review</code> (it ends in <code>?token=...</code>), or ask whoever started it.</p>
</body></html>"""


def presented_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get(HEADER) or request.query_params.get("token") or request.cookies.get(COOKIE)


class TokenMiddleware(BaseHTTPMiddleware):
    def __init__(self, app, token: str | None):
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.token is not None:
            given = presented_token(request)
            if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
                if request.url.path.startswith("/api/"):
                    message = "access token missing" if given is None else "wrong access token"
                    return _secure(JSONResponse({"error": f"{message}: use the link printed by `bugdet review`"}, 401))
                return _secure(HTMLResponse(DENIED_PAGE, 401))
            if "token" in request.query_params and request.method == "GET" and not request.url.path.startswith("/api/"):
                clean = request.url.remove_query_params("token")
                response = RedirectResponse(str(clean), status_code=303)
                self._set_cookie(response, request)
                return _secure(response)
        response = await call_next(request)
        if self.token is not None and request.cookies.get(COOKIE) != self.token:
            self._set_cookie(response, request)
        return _secure(response)

    def _set_cookie(self, response: Response, request: Request) -> None:
        response.set_cookie(COOKIE, self.token or "", httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")


def _secure(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    return response
