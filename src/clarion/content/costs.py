"""What one filter or method call may cost, checked before the call runs.

The render budget (:class:`~.limits.RenderLimits`: 50 ms of CPU, 500 ms of wall clock per message) is
checked between calls, never inside one, so each call must be cheap whatever its arguments. The size
guards (:mod:`.guards`) keep every value within ``max_value_chars`` (1,000,000 characters). Filters that
run in C (``upper``, ``replace``, ``escape``, ``truncate``, ``wordcount``, ``tojson``, ``center`` ...) take
a few milliseconds at that size. The ones below loop in Python per word, line, tag or item, or worse,
and get smaller inputs. Worst inputs found, CPU time on the project's 2-core CI machine:

- ``wordwrap``: textwrap copies the rest of a long word for every line it cuts from it, so a word of
  n characters at width w costs n²/2w: ``('a' * 999999) | wordwrap(1)`` took 24 s. Now at most
  ``max_filter_text`` characters (65,536) and ``max_filter_items`` lines (10,000 = text / width): ≤ 20 ms.
- ``urlize``, ``title``, ``striptags``, ``indent``, ``urlencode`` on text, ``pprint``: per word, tag, line,
  character or item; at most ``max_filter_text`` characters (printed, for ``pprint``): ≤ 50 ms (``urlize``).
- ``sort``, ``dictsort``, ``unique``, ``groupby``, ``map``, ``select``, ``reject``, ``selectattr``,
  ``rejectattr``, ``sum``, ``min``, ``max``, ``join``, ``batch``, ``slice``, ``xmlattr``, ``items``,
  ``urlencode`` on a collection: a Python call per item (a string's items are its characters: ``('a' *
  999999) | sort`` took 0.8 s); at most ``max_filter_items`` (10,000) items: ≤ 30 ms (``groupby``). An
  iterator is drawn into a list first, counted as it goes, each item a step of the time budget.
  ``list`` and ``reverse`` run in C on a sized value; an iterator they are given is drawn the same way.
- ``sum`` adds numbers: summing lists copies the total so far for every item (quadratic), so ``start``
  must be a number. ``round``'s precision is within ``max_width``: ``10 ** precision`` is computed.
- ``urlize(extra_schemes=...)`` tries each scheme on each word: at most :data:`MAX_EXTRA_SCHEMES`.
- The ``punycode`` and ``idna`` codecs (``str.encode``, ``bytes.decode``) are pure Python and quadratic:
  at most :data:`MAX_SLOW_CODEC_CHARS` characters, far more than a domain name (253).
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Callable, Iterable, Mapping, Sized
from decimal import Decimal
from typing import Any

from jinja2.runtime import Undefined
from jinja2.utils import _PassArg

from .limits import RenderLimits, check_width, current_limits, printed_size, refuse, tick

MAX_EXTRA_SCHEMES = 16
MAX_SLOW_CODEC_CHARS = 1_000
SLOW_CODECS = frozenset({"punycode", "idna"})

TEXT_FILTERS = frozenset({"wordwrap", "urlize", "title", "striptags", "indent", "urlencode"})
ITEM_FILTERS = frozenset({"sort", "dictsort", "unique", "groupby", "map", "select", "reject", "selectattr",
                          "rejectattr", "sum", "min", "max", "join", "batch", "slice", "xmlattr", "items",
                          "urlencode"})
DRAWING_FILTERS = frozenset({"list", "reverse"})  # C on a sized value, but they draw an iterator in full
# The rest, audited: constant time, or linear in C (a few ms at max_value_chars), or bounded by .guards and
# .filters (center, format, replace, tojson, the locale filters). A filter Jinja adds is in none of these
# sets until someone looks at it (tests/unit/test_filter_bounds.py checks that every filter is).
LINEAR_FILTERS = frozenset({
    "abs", "attr", "capitalize", "center", "count", "d", "default", "e", "escape", "filesizeformat", "first",
    "float", "forceescape", "format", "int", "last", "length", "lower", "random", "replace", "safe", "string",
    "tojson", "trim", "truncate", "upper", "wordcount", "money", "number", "percent", "date", "datetime", "time",
    "notrack",
})

Check = Callable[[Any, tuple[Any, ...], Mapping[str, Any], RenderLimits], None]


def bound_cost(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (a filter, maybe already guarded) refusing inputs that would make one call slow."""
    skip = 1 if _PassArg.from_obj(func) is not None else 0  # the context or environment comes first
    check = CHECKS.get(name)
    text, items, draws = name in TEXT_FILTERS, name in ITEM_FILTERS, name in ITEM_FILTERS | DRAWING_FILTERS
    if not (check or text or draws):
        return func

    @functools.wraps(func)  # keeps jinja_pass_arg, so Jinja still passes the context
    def bounded_call(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip and not isinstance(args[skip], Undefined):
            limits = current_limits()
            value = args[skip]
            if draws and _is_iterator(value):
                value = _draw(name, value, limits.max_filter_items)
                args = (*args[:skip], value, *args[skip + 1:])
            _check_size(name, value, text, items, limits)
            if check is not None:
                check(value, args[skip + 1:], kwargs, limits)
        return func(*args, **kwargs)

    return bounded_call


def _check_size(name: str, value: Any, text: bool, items: bool, limits: RenderLimits) -> None:
    """Text filters count characters; list filters count items, and a string's items are its characters."""
    if text and isinstance(value, str):
        if len(value) > limits.max_filter_text:
            raise refuse(f"{name} takes at most {limits.max_filter_text:,} characters, not {len(value):,}")
    elif items and isinstance(value, Sized) and len(value) > limits.max_filter_items:
        raise refuse(f"{name} takes at most {limits.max_filter_items:,} items, not {len(value):,}")


def _is_iterator(value: Any) -> bool:
    return isinstance(value, Iterable) and not isinstance(value, (Sized, Undefined))


def _draw(name: str, iterable: Iterable[Any], limit: int) -> list[Any]:
    """The iterator's items, drawn one by one (each a step of the time budget), refused past ``limit``."""
    items: list[Any] = []
    for item in iterable:
        if len(items) == limit:
            raise refuse(f"{name} takes at most {limit:,} items, and was given more")
        tick()
        items.append(item)
    return items


def _argument(args: tuple[Any, ...], kwargs: Mapping[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def _check_wordwrap(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], limits: RenderLimits) -> None:
    width = _argument(args, kwargs, 0, "width", 79)
    if isinstance(value, str) and isinstance(width, int):
        lines = len(value) // max(width, 1)
        if lines > limits.max_filter_items:
            raise refuse(f"wordwrap of {len(value):,} characters at width {width} makes about {lines:,} lines, "
                         f"over the {limits.max_filter_items:,} allowed")


def _check_urlize(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], limits: RenderLimits) -> None:
    schemes = _argument(args, kwargs, 4, "extra_schemes", None)
    if isinstance(schemes, Sized) and len(schemes) > MAX_EXTRA_SCHEMES:
        raise refuse(f"urlize takes at most {MAX_EXTRA_SCHEMES} extra schemes, not {len(schemes):,}")


def _check_sum(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], limits: RenderLimits) -> None:
    start = _argument(args, kwargs, 1, "start", 0)
    if isinstance(start, bool) or not isinstance(start, (int, float, Decimal)):
        raise refuse("sum adds numbers: start must be a number")


def _check_round(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], limits: RenderLimits) -> None:
    precision = _argument(args, kwargs, 0, "precision", 0)
    if isinstance(precision, int):
        check_width(abs(precision), "round precision")


def _check_pprint(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any], limits: RenderLimits) -> None:
    size = printed_size(value, limits.max_filter_text)
    if size > limits.max_filter_text:
        raise refuse(f"pprint takes values of at most {limits.max_filter_text:,} printed characters")


CHECKS: Mapping[str, Check] = {
    "wordwrap": _check_wordwrap, "urlize": _check_urlize, "sum": _check_sum, "round": _check_round,
    "pprint": _check_pprint,
}


def check_codec_call(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuses ``str.encode`` / ``bytes.decode`` with a pure-Python codec on long input."""
    owner = getattr(method, "__self__", None)
    if getattr(method, "__name__", "") not in ("encode", "decode") or not isinstance(owner, (str, bytes)):
        return
    encoding = _argument(args, kwargs, 0, "encoding", "utf-8")
    try:
        codec = codecs.lookup(encoding).name if isinstance(encoding, str) else ""
    except LookupError:
        return  # the call itself fails, quickly
    if codec in SLOW_CODECS and len(owner) > MAX_SLOW_CODEC_CHARS:
        raise refuse(f"the {codec} codec takes at most {MAX_SLOW_CODEC_CHARS:,} characters, not {len(owner):,}")
