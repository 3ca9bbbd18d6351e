"""Reading a raw JSON body with a size limit, as the Segment endpoints need.

The limit applies to the bytes received and, for ``Content-Encoding: gzip`` (which the Segment
SDKs can send), to the decompressed payload too. Any JSON content type is accepted (analytics.js
beacons send ``text/plain``). Strings with NUL characters and absurd nesting are refused up front:
neither can be stored on PostgreSQL, and both are only ever sent by broken or hostile clients.
"""

from __future__ import annotations

import zlib
from typing import Any

import orjson
from fastapi import Request

from .errors import ApiError

KB = 1024
MAX_DEPTH = 64


def too_large(limit: int, what: str = "the request body") -> ApiError:
    return ApiError(413, "payload_too_large", f"{what} is larger than the limit of {limit // KB} KB",
                    limit_bytes=limit)


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdecimal() and int(declared) > limit:
        raise too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    data = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return gunzip(data, limit)
    if encoding not in ("", "identity"):
        raise ApiError(415, "unsupported_encoding",
                       f"Content-Encoding {encoding!r} is not supported (use gzip)")
    return data


def gunzip(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise ApiError(400, "malformed_body", "the gzip body could not be decompressed") from None
    if len(out) > limit:
        raise too_large(limit, "the decompressed request body")
    return out


def parse_json(data: bytes) -> Any:
    if not data.strip():
        raise ApiError(400, "malformed_json", "the request body is empty; a JSON object is expected")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the request body is not valid JSON: {exc}") from None
    check_tree(value)
    return value


def check_tree(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ApiError(400, "malformed_json", f"the JSON is nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise ApiError(400, "malformed_json", "strings may not contain NUL (\\u0000) characters")


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    value = parse_json(await read_limited(request, limit))
    if not isinstance(value, dict):
        raise ApiError(400, "malformed_json", "the request body must be a JSON object")
    return value


def json_size(value: Any) -> int:
    return len(orjson.dumps(value))
