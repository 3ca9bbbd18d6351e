"""The attribution model: which message, if any, is credited with a conversion. Pure: no I/O.

A **conversion** is an event of a contact (its name, time and properties). A **touch** is something one of
our messages did to that contact: a human click, a human open, or a delivery (a ``received`` or
``delivered`` engagement, or the ledger's ``sent`` row). Each touch carries its campaign's
:class:`~clarion.domain.campaigns.ConversionGoal`. The credited touch is found in three steps:

1. **The goal matches.** Only touches of campaigns whose goal names this event count: the event's name
   equals ``goal.event`` and every ``goal.where`` property equals the event's property of that name.
   Values compare by JSON type, as segment rules do: numbers as numbers (``5`` equals ``5.0``), text as
   text (case and spaces matter), booleans as booleans; ``"5"`` does not equal ``5``, nor ``true`` ``1``.
2. **The touch is in its window.** The touch happened at or before the conversion, and the conversion
   happened within the campaign's window for that kind of touch: ``click_days`` after a click,
   ``open_days`` after an open, ``delivery_days`` after a delivery (both ends included).
3. **Last touch wins, by kind first.** A click beats any open, and an open any delivery, whatever their
   times: a click four days ago (window five days) beats an open an hour ago. Among touches of the same
   kind the latest wins; equal times go to the higher delivery id (the later send), so the answer never
   depends on the order the touches were given in.

Machine opens and clicks (mail privacy proxies, link scanners; :mod:`clarion.tracking.classify`) never
count: nobody read or clicked anything. A conversion with no touch in any window is not credited.
Crediting each conversion at most once (one ``converted`` engagement per event) is the writer's part
(:mod:`clarion.services.attribution`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..domain.campaigns import ConversionGoal

TOUCH_KINDS = ("click", "open", "delivery")
# click > open > delivery: the stronger signal of interest wins while it is in its window.
_PRECEDENCE = {"click": 2, "open": 1, "delivery": 0}


@dataclass(frozen=True)
class Conversion:
    contact_id: int
    at: datetime
    event: str
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CandidateTouch:
    """One touch of the converting contact, with its campaign's goal."""

    delivery_id: int
    campaign_id: int
    step: str
    channel: str
    kind: str  # click | open | delivery
    at: datetime
    goal: ConversionGoal
    machine: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _PRECEDENCE:
            raise ValueError(f"touch kind {self.kind!r} is not one of {', '.join(TOUCH_KINDS)}")


def goal_matches(goal: ConversionGoal, event: str, properties: Mapping[str, Any]) -> bool:
    """The event's name is the goal's, and every ``where`` property is equal (see the module docstring)."""
    if event != goal.event:
        return False
    return all(key in properties and same_value(expected, properties[key]) for key, expected in goal.where.items())


def same_value(expected: Any, actual: Any) -> bool:
    """Equality by JSON type: numbers as numbers, and a boolean is not a number."""
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and expected == actual
    if _is_number(expected) or _is_number(actual):
        return _is_number(expected) and _is_number(actual) and float(expected) == float(actual)
    return isinstance(expected, str) and isinstance(actual, str) and expected == actual


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def window(goal: ConversionGoal, kind: str) -> timedelta:
    """How long after a touch of this kind a conversion is credited to it."""
    days = {"click": goal.click_days, "open": goal.open_days, "delivery": goal.delivery_days}[kind]
    return timedelta(days=days)


def longest_window(goals: Iterable[ConversionGoal], kind: str | None = None) -> timedelta:
    """The longest window of any goal, for one kind of touch (None: any kind): how far back a conversion's
    touches of that kind can lie."""
    kinds = TOUCH_KINDS if kind is None else (kind,)
    return max((window(goal, k) for goal in goals for k in kinds), default=timedelta(0))


def in_window(touch: CandidateTouch, at: datetime) -> bool:
    return touch.at <= at <= touch.at + window(touch.goal, touch.kind)


def credit(conversion: Conversion, touches: Iterable[CandidateTouch]) -> CandidateTouch | None:
    """The touch credited with the conversion, or None (see the module docstring for the model)."""
    eligible = [touch for touch in touches
                if not touch.machine and in_window(touch, conversion.at)
                and goal_matches(touch.goal, conversion.event, conversion.properties)]
    return max(eligible, key=lambda t: (_PRECEDENCE[t.kind], t.at, t.delivery_id), default=None)
