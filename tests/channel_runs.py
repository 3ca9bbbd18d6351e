"""Running an adapter from a synchronous test: send messages concurrently, then close the adapter."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from clarion.channels.base import DeliveryResult


def send_all(channel: Any, messages: Sequence[Any]) -> list[DeliveryResult]:
    """``channel.send`` for every message at once, in one event loop; the channel is closed afterwards."""
    async def run() -> list[DeliveryResult]:
        try:
            return list(await asyncio.gather(*(channel.send(message) for message in messages)))
        finally:
            await channel.aclose()
    return asyncio.run(run())
