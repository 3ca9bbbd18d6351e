"""Caps on rendering: time, loops, value sizes and output sizes, and the per-message render state.

A template is code written by a marketer, run once per recipient. These caps keep one template from
starving a send of CPU or memory: every guard in the sandbox reads the state of the message being
rendered (a context variable, so renders in several threads never share it) and raises
:class:`LimitExceeded` for the part being rendered.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import tzinfo
from string import Formatter
from typing import Any

from babel import Locale
from jinja2.runtime import Undefined

from .errors import LimitExceeded, RenderTimeout

KIB = 1024


@dataclass(frozen=True)
class PartCap:
    """At most ``limit`` characters (``unit="chars"``) or UTF-8 bytes of output; ``source`` says why."""

    limit: int
    unit: str
    source: str


# Output caps per part. "push" and "webpush" cap the sum of the channel's rendered texts.
PART_CAPS: Mapping[str, PartCap] = {
    "email.subject": PartCap(998, "chars", "RFC 5322 §2.1.1: a header line is at most 998 characters"),
    "email.preheader": PartCap(998, "chars", "no standard; Clarion reuses the subject's line limit"),
    "email.html": PartCap(512 * KIB, "bytes", "Clarion's bound (Gmail already clips bodies over 102 KB)"),
    "email.text": PartCap(256 * KIB, "bytes", "Clarion's bound for the text/plain alternative"),
    "sms.text": PartCap(1_600, "chars", "Twilio refuses message bodies over 1,600 characters"),
    "push": PartCap(4_096, "bytes", "FCM and APNs refuse payloads over 4,096 bytes"),
    # RFC 8030 §7.2 guarantees 4,096 bytes per push message; RFC 8291 (aes128gcm) spends 86 on the
    # header, 16 on the tag and 1 on the padding delimiter, leaving 3,993 bytes of plaintext.
    "webpush": PartCap(3_993, "bytes", "RFC 8030 §7.2 (4,096 bytes) less RFC 8291 encryption overhead"),
    "webhook.body": PartCap(1_024 * KIB, "bytes", "Clarion's bound: a webhook carries data, not documents"),
    "whatsapp.text": PartCap(4_096, "chars", "WhatsApp Cloud API: a text message body is at most 4,096 characters"),
    # Meta refuses a template whose body, parameters filled in, is over 1,024 characters.
    "whatsapp.parameters": PartCap(1_024, "chars", "WhatsApp Cloud API: a template body is at most 1,024 characters"),
    # Twilio's Calls API takes at most 4,000 characters of TwiML; the <Response><Say> wrapper and XML
    # escaping need room, so the spoken text gets 3,000.
    "voice.say": PartCap(3_000, "chars", "Twilio Calls API: the Twiml parameter is at most 4,000 characters"),
    "inapp": PartCap(16 * KIB, "bytes", "Clarion's bound for an inbox message"),
    "export": PartCap(32 * KIB, "bytes", "Clarion's bound for one row of an offline export"),
}


@dataclass(frozen=True)
class RenderLimits:
    """What one message may cost. The defaults fit marketing messages with room to spare."""

    cpu_seconds: float = 0.050  # CPU of the rendering thread per message (all its parts)
    wall_seconds: float = 0.500  # wall clock per message: a backstop when the machine is overloaded
    max_range: int = 10_000  # items one range() may produce
    max_loop_iterations: int = 100_000  # iterations of all {% for %} loops of one message
    max_value_chars: int = 1_000_000  # approximate printed size of any one value a template builds
    max_width: int = 1_000  # padding width, format width/precision, indent of filters and methods
    max_int_bits: int = 4_096  # integers built by * and ** (a 1,234-digit number)
    # One call is never interrupted, so the filters that loop in Python get inputs they finish within
    # about the CPU budget (see .costs): characters of text, and items of a list, mapping or iterable.
    max_filter_text: int = 65_536
    max_filter_items: int = 10_000
    caps: Mapping[str, PartCap] = field(default_factory=lambda: dict(PART_CAPS))

    def __post_init__(self) -> None:
        if self.max_value_chars < ALWAYS_ALLOWED_CHARS:
            raise ValueError(f"max_value_chars must be at least {ALWAYS_ALLOWED_CHARS}")


# Strings this short are never measured against max_value_chars: the check stays off the hot path.
ALWAYS_ALLOWED_CHARS = 4_096


DEFAULT_LIMITS = RenderLimits()
# Clocks are read every few hooks (a hook costs well under a microsecond, so the deadline is late by
# microseconds at most); thread_time() costs ~250 ns against ~60 ns for perf_counter() on a plain Linux
# host, but ~2.2 µs against ~110 ns on this project's sandboxed CI machines (a system call, no vDSO).
_WALL_CHECK_EVERY = 4
_CPU_CHECK_EVERY = 32


class RenderState:
    """The message being rendered: its part, budgets, formatting locale and the undefined names met."""

    def __init__(self, limits: RenderLimits, locale: Locale, zone: tzinfo, strict: bool) -> None:
        self.limits = limits
        self.locale = locale
        self.zone = zone
        self.strict = strict
        self.part = "?"
        self.undefined: dict[str, None] = {}  # insertion-ordered set
        self.loop_iterations_left = limits.max_loop_iterations
        self._ticks = 0
        self._wall_deadline = float("inf")
        self._cpu_deadline = float("inf")

    def start_clock(self) -> None:
        self._wall_deadline = time.perf_counter() + self.limits.wall_seconds
        self._cpu_deadline = time.thread_time() + self.limits.cpu_seconds

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Work done once per template (compiling) is not charged to the message being rendered."""
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self._wall_deadline += time.perf_counter() - wall
            self._cpu_deadline += time.thread_time() - cpu

    def tick(self) -> None:
        """Called from the sandbox's hooks (calls, attribute look-ups, loop iterations, filters)."""
        self._ticks += 1
        if self._ticks % _WALL_CHECK_EVERY:
            return
        if time.perf_counter() > self._wall_deadline:
            raise RenderTimeout(self.part, f"rendering took over {self.limits.wall_seconds * 1000:.0f} ms")
        if self._ticks % _CPU_CHECK_EVERY == 0 and time.thread_time() > self._cpu_deadline:
            raise RenderTimeout(self.part, f"rendering used over {self.limits.cpu_seconds * 1000:.0f} ms of CPU")

    def guard_loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for item in iterable:
            self.loop_iterations_left -= 1
            if self.loop_iterations_left < 0:
                raise LimitExceeded(self.part, f"loops ran over {self.limits.max_loop_iterations:,} iterations")
            self.tick()
            yield item

    def met_undefined(self, name: str) -> None:
        self.undefined[name] = None


_STATE: ContextVar[RenderState | None] = ContextVar("clarion_render_state", default=None)


@contextmanager
def rendering(state: RenderState) -> Iterator[RenderState]:
    token = _STATE.set(state)
    try:
        yield state
    finally:
        _STATE.reset(token)


def current_state() -> RenderState | None:
    return _STATE.get()


def current_limits() -> RenderLimits:
    state = _STATE.get()
    return state.limits if state is not None else DEFAULT_LIMITS


def current_part() -> str:
    state = _STATE.get()
    return state.part if state is not None else "?"


def tick() -> None:
    state = _STATE.get()
    if state is not None:
        state.tick()


def refuse(reason: str) -> LimitExceeded:
    return LimitExceeded(current_part(), reason)


# --- value sizes -------------------------------------------------------------------------------

def printed_size(value: Any, budget: int) -> int:
    """Roughly how many characters ``str(value)`` takes, stopping once past ``budget``.

    Containers are walked (their repr prints every item): a list holding one large string 10,000
    times costs nothing to build but 10,000 times the string to print.
    """
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool) or value is None or isinstance(value, Undefined):
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2  # decimal digits are about 0.3 per bit, and a sign
    if isinstance(value, float):
        return 24
    if isinstance(value, Mapping):
        items: Iterable[Any] = (x for pair in value.items() for x in pair)
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return 64  # other objects (dates, generators, functions) print small
    total = 2
    for item in items:
        total += printed_size(item, budget - total) + 2
        if total > budget:
            break
    return total


_SMALL_TYPES = frozenset({int, float, bool, type(None)})


def bounded(value: Any) -> Any:
    """``value``, once its printed size is within ``max_value_chars``."""
    kind = type(value)
    if (kind is str and len(value) <= ALWAYS_ALLOWED_CHARS) or kind in _SMALL_TYPES:  # the hot path
        return value
    limit = current_limits().max_value_chars
    size = printed_size(value, limit)
    if size > limit:
        raise refuse(f"a value of {size:,} characters or more is over the {limit:,} allowed")
    return value


def check_width(width: Any, what: str) -> None:
    limit = current_limits().max_width
    if isinstance(width, int) and width > limit:
        raise refuse(f"{what} {width:,} is over the {limit:,} allowed")


def check_product(size: int, times: int, what: str) -> None:
    """Refuses building ``times`` copies of something ``size`` characters long."""
    limit = current_limits().max_value_chars
    if times > 0 and size * times > limit:
        raise refuse(f"{what} would build about {size * times:,} characters, over the {limit:,} allowed")


# printf-style conversion: %[(key)][flags][width][.precision][length]type (Python's str % operator).
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")


def check_percent_format(fmt: str, args: Any) -> None:
    """Widths within ``max_width`` (``*`` refused) and the result within ``max_value_chars``."""
    specs = _PERCENT_SPEC.findall(fmt)
    widest = 0
    for width, precision in specs:
        if "*" in (width, precision):
            raise refuse("'*' widths are not allowed in % formats")
        widest = max(widest, int(width or 0), int(precision or 0))
    check_width(widest, "format width")
    values = list(args.values()) if isinstance(args, Mapping) else list(args) if isinstance(args, tuple) else [args]
    _check_formatted_size(fmt, len(specs), widest, values)


def check_brace_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """The same for ``str.format`` and ``format_map``: no nested fields, small widths, bounded result."""
    fields = widest = 0
    for _literal, name, spec, _conversion in Formatter().parse(fmt):
        if name is None:
            continue
        fields += 1
        if spec and "{" in spec:
            raise refuse("nested fields are not allowed in format specifications")
        widest = max([widest, *(int(n) for n in re.findall(r"\d+", spec or ""))])
    check_width(widest, "format width")
    _check_formatted_size(fmt, fields, widest, [*args, *kwargs.values()])


def _check_formatted_size(fmt: str, fields: int, widest: int, values: list[Any]) -> None:
    """A field prints at most the largest value or the widest width; keys may repeat one value."""
    limit = current_limits().max_value_chars
    largest = max((printed_size(v, limit) for v in values), default=0)
    size = len(fmt) + fields * max(largest, widest)
    if size > limit:
        raise refuse(f"this format would build about {size:,} characters, over the {limit:,} allowed")
