"""Every error the API answers, as JSON ``{"error": <code>, "message": ..., ...}``.

Bad input is always a 4xx: ``FieldError`` → 422 (with ``field`` and ``reason``), ``RuleError`` → 422
``invalid_rule`` (``field``, ``reason``, ``path``; ``line`` and ``column`` for a syntax error), ``NotFound`` → 404,
``Conflict`` → 409, ``Erased`` → 410, malformed JSON → 400, an oversized body → 413.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..content.errors import InvalidTemplate
from ..domain.errors import ClarionError, Conflict, Erased, FieldError, NotFound
from ..domain.rules import RuleError, RuleSyntaxError

log = logging.getLogger("clarion.api")


class ApiError(Exception):
    """An error answered as is: status, machine-readable code, human message, extra fields."""

    def __init__(self, status: int, error: str, message: str, *, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers
        self.extra = extra


def error_response(status: int, error: str, message: str, *, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status, headers=headers)


def field_error_response(field: str, reason: str) -> JSONResponse:
    return error_response(422, "invalid_field", f"{field}: {reason}", field=field, reason=reason)


def loc_to_field(loc: tuple[Any, ...]) -> str:
    """('body', 'batch', 3, 'event') → 'batch[3].event'; the location kind is dropped."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else list(loc)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.error, exc.message, headers=exc.headers, **exc.extra)


async def _field_error(_request: Request, exc: FieldError) -> JSONResponse:
    return field_error_response(exc.field, exc.reason)


async def _rule_error(_request: Request, exc: RuleError) -> JSONResponse:
    # Rules only arrive in a "rule" field; path points inside it (empty for the rule as a whole).
    where = {"line": exc.line, "column": exc.column} if isinstance(exc, RuleSyntaxError) else {}
    return error_response(422, "invalid_rule", str(exc), field="rule", reason=exc.reason, path=exc.path, **where)


async def _clarion_error(_request: Request, exc: ClarionError) -> JSONResponse:
    if isinstance(exc, InvalidTemplate):
        problems = [{"part": p.part, "message": p.message, "kind": p.kind, "line": p.line, "locale": p.locale,
                     "suggestion": p.suggestion} for p in exc.problems]
        return error_response(422, "invalid_template", str(exc), problems=problems)
    if isinstance(exc, NotFound):
        return error_response(404, "not_found", str(exc))
    if isinstance(exc, Erased):
        return error_response(410, "erased", str(exc))
    if isinstance(exc, Conflict):
        return error_response(409, "conflict", str(exc))
    return error_response(400, "bad_request", str(exc))


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "malformed_json", "the request body is not valid JSON")
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    return field_error_response(loc_to_field(tuple(first.get("loc", ()))), str(first.get("msg")))


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    codes = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _integrity_error(_request: Request, exc: IntegrityError) -> JSONResponse:
    # A concurrent writer got there first (a unique identifier, a message id): retrying is safe.
    log.warning("integrity error answered as 409: %s", exc.orig)
    return error_response(409, "conflict",
                          "the write conflicted with stored data or a concurrent request; retry")


async def _data_error(_request: Request, exc: DataError) -> JSONResponse:
    log.info("data error answered as 422: %s", exc.orig)
    return error_response(422, "invalid_value", "a value could not be stored (too long, out of range or "
                          "containing characters the database refuses)")


async def _recursion_error(_request: Request, _exc: RecursionError) -> JSONResponse:
    return error_response(400, "malformed_json", "the request body is nested too deeply")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(FieldError, _field_error)
    app.add_exception_handler(RuleError, _rule_error)
    app.add_exception_handler(ClarionError, _clarion_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(RecursionError, _recursion_error)
