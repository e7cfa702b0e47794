"""The workspace's web page: ``GET /`` and its three static files, so a person can watch and use the stand-in
workspace in a browser (channels, live alerts, ``/services`` commands, Block Kit buttons).

The page is plain HTML, CSS and JavaScript shipped inside the package (``static/``): no build step and no CDN,
because the demo must work on a machine with no internet. It drives the workspace only through the public
``/_workspace/`` control API, the same one tests use, so what the page shows is what a test can check.

Everything it renders comes from the bot or the cloud API and is untrusted; the JavaScript builds the DOM with
``textContent`` only, and the Content-Security-Policy sent here forbids inline scripts and remote loads, so a
mistake there cannot turn into script injection.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

STATIC_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
"""The only files served: a fixed list, so no request path can reach anything else in the package."""

HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The files change while developing the page; a stale app.js against a newer control API only confuses.
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> bytes:
    """The file's bytes from the installed package (works from a wheel or a source tree alike)."""
    return (resources.files("services_bot.workspace") / "static" / name).read_bytes()


def _file(name: str) -> Response:
    return Response(_read(name), media_type=STATIC_FILES[name], headers=HEADERS)


async def index(request: Request) -> Response:
    """The page itself."""
    return _file("index.html")


async def static(request: Request) -> Response:
    """``/static/app.js`` and ``/static/style.css``; anything else is 404."""
    name = request.path_params["name"]
    if name not in STATIC_FILES:
        return PlainTextResponse("not found", status_code=404)
    return _file(name)


ROUTES: list[Route] = [
    Route("/", index, methods=["GET"]),
    Route("/static/{name}", static, methods=["GET"]),
]
