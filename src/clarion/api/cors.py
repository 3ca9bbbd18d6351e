"""CORS for the routes a business's own web page calls from its origin (web push, the in-app inbox).

The request's ``Origin`` is echoed and preflights are answered. That is safe because nothing here rides
on cookies (no ``Access-Control-Allow-Credentials``): the routes are public or take a token in the
``Authorization`` header, which a foreign page cannot obtain.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

PREFLIGHT_MAX_AGE = "600"  # seconds a browser may reuse a preflight answer (Firefox caps it at 86,400)
CORS_METHODS = "GET, POST, DELETE, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"


def cors_headers(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


class CorsRoute(APIRoute):
    """Adds the CORS headers to every answer of the route, errors included (a 401 the page cannot read
    would hide why its token was refused): errors are rendered here by the app's own handlers."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def with_cors(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:
                render = _exception_handler(request, exc)
                if render is None:
                    raise
                response = render(request, exc)
                if inspect.isawaitable(response):
                    response = await response
            response.headers.update(cors_headers(request))
            return response

        return with_cors


def _exception_handler(request: Request, exc: Exception) -> Callable | None:
    handlers = request.app.exception_handlers
    return next((handlers[kind] for kind in type(exc).__mro__ if kind in handlers), None)


def add_preflight(router: APIRouter) -> None:
    """Answers the browser's OPTIONS preflight for every path of ``router``."""

    @router.options("", include_in_schema=False)
    @router.options("/{path:path}", include_in_schema=False)
    def preflight(request: Request, path: str = "") -> Response:
        headers = cors_headers(request) | {"Access-Control-Allow-Methods": CORS_METHODS,
                                           "Access-Control-Allow-Headers": CORS_HEADERS,
                                           "Access-Control-Max-Age": PREFLIGHT_MAX_AGE}
        return Response(status_code=204, headers=headers)
