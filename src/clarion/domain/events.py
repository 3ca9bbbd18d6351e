"""Events: the Segment e-commerce names Clarion treats as first-class, and purchase extraction."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .custom_values import KB, CustomLimits, to_json
from .errors import FieldError

# Segment E-commerce spec v2 event names. Later issues trigger journeys on these.
ORDER_COMPLETED = "Order Completed"
PRODUCT_VIEWED = "Product Viewed"
PRODUCT_ADDED = "Product Added"
PRODUCT_REMOVED = "Product Removed"
CART_VIEWED = "Cart Viewed"
CHECKOUT_STARTED = "Checkout Started"
ORDER_REFUNDED = "Order Refunded"
COMMERCE_EVENTS = frozenset({ORDER_COMPLETED, PRODUCT_VIEWED, PRODUCT_ADDED, PRODUCT_REMOVED,
                             CART_VIEWED, CHECKOUT_STARTED, ORDER_REFUNDED})
# Recorded by the WhatsApp webhook for each message a contact sends us: it opens the 24-hour window in
# which free-form messages may be sent (and segments can use it like any event).
WHATSAPP_MESSAGE_RECEIVED = "WhatsApp Message Received"
MAX_EVENT_NAME = 200  # characters, the column width
# Properties (see custom_values for how numbers are stored): Segment refuses a call over 32 KB, so every
# event a Segment SDK can send fits; the count and name length are Clarion's bounds (names as attributes').
PROPERTY_LIMITS = CustomLimits("properties", "property", max_keys=255, max_key_chars=100, max_bytes=32 * KB,
                               why="Segment's limit for one call")


@dataclass(frozen=True)
class Purchase:
    order_id: str | None
    revenue: float | None
    currency: str | None


@dataclass
class EventInput:
    """One event to ingest. ``contact_id`` is filled in by the service once the sender is resolved."""

    name: str
    message_id: str
    occurred_at: datetime
    received_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    contact_id: int | None = None

    def purchase(self) -> Purchase:
        return purchase_of(self.name, self.properties)


def check_event_name(raw: Any) -> str:
    name = str(raw or "").strip()
    if not name:
        raise FieldError("event", "an event name is required")
    if len(name) > MAX_EVENT_NAME:
        raise FieldError("event", f"longer than {MAX_EVENT_NAME} characters")
    return name


def check_properties(properties: Mapping[str, Any]) -> dict[str, Any]:
    """The properties as they are stored; raises :class:`FieldError` past :data:`PROPERTY_LIMITS`."""
    return to_json(properties, PROPERTY_LIMITS)[0]


def properties_json(properties: Mapping[str, Any]) -> bytes:
    """The JSON stored for ``properties``, checked as :func:`check_properties` checks them (every path that
    stores events, the importers' fast CSV path included, serialises through here)."""
    return to_json(properties, PROPERTY_LIMITS)[1]


def parse_timestamp(raw: Any, field_name: str = "timestamp") -> datetime:
    """ISO 8601 with an offset (``Z`` accepted). A time without an offset is taken as UTC."""
    if isinstance(raw, datetime):
        value = raw
    else:
        text = str(raw).strip()
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise FieldError(field_name, f"{text!r} is not an ISO 8601 time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _number(raw: Any, name: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise FieldError(f"properties.{name}", f"{raw!r} is not a number") from None
    except OverflowError:  # an integer beyond the range of a double
        raise FieldError(f"properties.{name}", "must be a finite number") from None
    if not math.isfinite(value):
        raise FieldError(f"properties.{name}", "must be a finite number")
    return value


def purchase_of(name: str, properties: Mapping[str, Any]) -> Purchase:
    """Order id, revenue and currency of an ``Order Completed`` event (empty for other events).

    Revenue is ``revenue``, else ``total``, else the sum of ``products[].price * quantity``,
    following Segment's e-commerce spec.
    """
    if name != ORDER_COMPLETED:
        return Purchase(None, None, None)
    revenue = _number(properties.get("revenue"), "revenue")
    if revenue is None:
        revenue = _number(properties.get("total"), "total")
    if revenue is None:
        revenue = _products_total(properties.get("products"))
    currency = properties.get("currency")
    if currency is not None:
        currency = str(currency).strip().upper()
        if len(currency) != 3 or not currency.isalpha():
            raise FieldError("properties.currency", f"{currency!r} is not an ISO 4217 code")
    order_id = properties.get("order_id", properties.get("orderId"))
    return Purchase(str(order_id) if order_id is not None else None, revenue, currency)


def _products_total(products: Any) -> float | None:
    if not isinstance(products, list) or not products:
        return None
    total = 0.0
    for index, item in enumerate(products):
        if not isinstance(item, Mapping):
            raise FieldError(f"properties.products[{index}]", "must be an object")
        price = _number(item.get("price"), f"products[{index}].price") or 0.0
        quantity = _number(item.get("quantity", 1), f"products[{index}].quantity") or 0.0
        total += price * quantity
    return round(total, 2)
