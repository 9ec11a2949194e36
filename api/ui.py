"""`GET /ui`: the dashboard page, served by the API itself, and its two static files.

The page and its assets hold no data and no token, so they are served without one; everything the
page shows comes from the bearer-protected JSON endpoints (`api.dashboard_data`, `/v1/runs`). The
token the operator types is kept in the tab's `sessionStorage` and sent only as an `Authorization:
Bearer` header: never in a URL, never in a cookie (so a cross-site request carries no credential).
POSTs are also refused when their `Origin` is another site's (`origin_middleware`), and the page sets
a strict Content-Security-Policy (own scripts and styles only, no inline code, no framing).

Hand-written HTML, CSS and JavaScript shipped in `api/static/` (nothing vendored, no build step, no
CDN): the page works offline.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from api.errors import Handler, error_response

_STATIC = files("api").joinpath("static")
ASSETS: Final = {
    "/ui": ("index.html", "text/html; charset=utf-8"),
    "/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/ui/app.css": ("app.css", "text/css; charset=utf-8"),
}
UI_PATHS: Final = frozenset(ASSETS)
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def add_ui_routes(app: web.Application) -> None:
    # Read once at start-up: the files are part of the package and small.
    bodies = {path: _STATIC.joinpath(name).read_bytes() for path, (name, _) in ASSETS.items()}
    for path, (_, content_type) in ASSETS.items():
        app.router.add_get(path, _asset(bodies[path], content_type))


def _asset(body: bytes, content_type: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, headers={"Content-Type": content_type, **SECURITY_HEADERS})

    return handler


def same_origin(request: web.Request) -> bool:
    """False when a browser says the request comes from another site (Origin or Sec-Fetch-Site)."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser (curl, a script): the bearer token is the whole story
    # Host and port only: behind a TLS-terminating proxy the page is https while we see http.
    return urlsplit(origin).netloc == request.host


@web.middleware
async def origin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse state-changing requests a browser sent from another origin (CSRF defence in depth:
    the page sends its token as a header, which other sites' pages cannot make it do)."""
    if request.method in _UNSAFE_METHODS and not same_origin(request):
        return error_response(403, "forbidden_origin", "cross-origin requests may not change anything")
    return await handler(request)
