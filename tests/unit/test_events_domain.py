"""Purchase extraction and timestamps (Segment e-commerce spec v2)."""

from datetime import UTC, datetime

import pytest

from clarion.domain.errors import FieldError
from clarion.domain.events import check_event_name, parse_timestamp, purchase_of


def test_revenue_then_total_then_products():
    assert purchase_of("Order Completed", {"revenue": "12.50", "currency": "eur", "order_id": 9}).revenue == 12.5
    assert purchase_of("Order Completed", {"total": 30}).revenue == 30.0
    products = [{"price": 2.5, "quantity": 2}, {"price": 1}]
    assert purchase_of("Order Completed", {"products": products}).revenue == 6.0


def test_currency_and_order_id_are_normalised():
    purchase = purchase_of("Order Completed", {"revenue": 1, "currency": "eur", "orderId": 77})
    assert (purchase.currency, purchase.order_id) == ("EUR", "77")


def test_other_events_carry_no_purchase():
    assert purchase_of("Product Viewed", {"revenue": 10}).revenue is None


@pytest.mark.parametrize("props, field", [
    ({"revenue": "ten"}, "properties.revenue"),
    ({"revenue": float("inf")}, "properties.revenue"),
    ({"revenue": 1, "currency": "euros"}, "properties.currency"),
    ({"products": ["x"]}, "properties.products[0]"),
])
def test_bad_purchase_fields_are_named(props, field):
    with pytest.raises(FieldError) as err:
        purchase_of("Order Completed", props)
    assert err.value.field == field


def test_timestamps_become_aware_utc():
    assert parse_timestamp("2026-03-01T10:00:00Z") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_timestamp("2026-03-01T10:00:00+02:00") == datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert parse_timestamp("2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    with pytest.raises(FieldError, match="timestamp"):
        parse_timestamp("yesterday")


def test_event_name_is_required_and_bounded():
    assert check_event_name("  Signed Up ") == "Signed Up"
    with pytest.raises(FieldError):
        check_event_name("")
    with pytest.raises(FieldError):
        check_event_name("x" * 201)
