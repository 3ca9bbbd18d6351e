"""What the HTTP adapters share: one lazily built httpx client, network failures as RETRY, short details.

A client is built on first use, inside the running event loop (an httpx client belongs to the loop it
first ran in), and closed by ``aclose``; sending after ``aclose`` is a bug of the caller and raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from .base import DeliveryResult, Outcome

DETAIL_CHARS = 300  # a provider's words shortened to one line of at most this many characters


class HttpAdapter:
    """Base of an adapter with one httpx client; a subclass says how to build it in ``client_options``."""

    _client: httpx.AsyncClient | None = None
    _closed: bool = False

    def client_options(self) -> dict[str, Any]:
        raise NotImplementedError

    def check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__}.send after aclose")

    async def post(self, url: str, *, client: httpx.AsyncClient | None = None,
                   **request: Any) -> httpx.Response | DeliveryResult:
        """The provider's response, or RETRY when nothing classifiable came back (timeout, refused, reset,
        DNS, TLS): the request may or may not have arrived, and an idempotency key makes a retry safe.
        ``client``: another client of the adapter's than its one shared client."""
        try:
            return await (client or self._http()).post(url, **request)
        except httpx.TimeoutException as exc:
            return DeliveryResult(Outcome.RETRY, detail=one_line(f"timed out ({type(exc).__name__}): {exc}"))
        except httpx.TransportError as exc:
            return DeliveryResult(Outcome.RETRY, detail=one_line(f"{type(exc).__name__}: {exc}"))

    async def aclose(self) -> None:
        self._closed = True
        if self._client is not None:
            await self._client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(**self.client_options())
        return self._client


def pool_limits(connections: int) -> httpx.Limits:
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections)


def json_object(response: httpx.Response) -> Mapping[str, Any]:
    """The response's JSON object; an HTML error page from a proxy, or an empty body, as ``{"message": text}``."""
    try:
        payload = response.json()
    except ValueError:
        return {"message": response.text} if response.text else {}
    return payload if isinstance(payload, dict) else {}


def one_line(text: str) -> str:
    return " ".join(text.split())[:DETAIL_CHARS]
