"""Size guards for the operations a template can use to build large values from small ones.

Each guard checks *before* the allocation: ``'a' * 10**9`` is refused without building a gigabyte.
Operations whose result is at most the sum of their (already bounded) inputs, such as ``+`` and
``~``, are checked after. Filters and methods not listed here return values about the size of their
input, which the sandbox checks on the way out.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sized
from typing import Any

from jinja2.utils import _PassArg

from .limits import (
    bounded,
    check_percent_format,
    check_product,
    check_width,
    current_limits,
    printed_size,
    refuse,
    tick,
)

_SEQUENCES = (str, bytes, list, tuple)


def bounded_range(*args: int) -> range:
    """``range`` of at most ``max_range`` items."""
    values = range(*args)
    limit = current_limits().max_range
    if len(values) > limit:
        raise refuse(f"range() of {len(values):,} items is over the {limit:,} allowed")
    return values


def multiply(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, _SEQUENCES):
        left, right = right, left
    if isinstance(left, _SEQUENCES) and isinstance(right, int) and not isinstance(right, bool):
        size = len(left) if isinstance(left, (str, bytes)) else printed_size(left, current_limits().max_value_chars)
        check_product(max(size, 1), right, "repeating a value")
    elif _both_ints(left, right):
        _check_bits(left.bit_length() + right.bit_length())
    return left * right


def power(left: Any, right: Any) -> Any:
    if _both_ints(left, right) and right > 0 and abs(left) > 1:
        _check_bits(left.bit_length() * right)
    return left**right


def add(left: Any, right: Any) -> Any:
    # Both sides are bounded already, so the sum is at most twice the cap: check afterwards.
    return bounded(left + right)


def modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        check_percent_format(left, right)
    return left % right


def _both_ints(left: Any, right: Any) -> bool:
    return isinstance(left, int) and isinstance(right, int)


def _check_bits(bits: int) -> None:
    limit = current_limits().max_int_bits
    if bits > limit:
        raise refuse(f"an integer of about {bits:,} bits is over the {limit:,} allowed")


BINOPS: Mapping[str, Callable[[Any, Any], Any]] = {"*": multiply, "**": power, "+": add, "%": modulo}


# --- methods of str, bytes and int ------------------------------------------------------------


def check_method_call(method: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuses builtin method calls that would build a value over the caps."""
    owner = getattr(method, "__self__", None)
    if not isinstance(owner, (str, bytes, int)):
        return
    check = _METHOD_CHECKS.get(getattr(method, "__name__", ""))
    if check is not None:
        check(owner, args, kwargs)


def _check_padding(owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    check_width(args[0] if args else kwargs.get("width", 0), "padding width")


def _check_expandtabs(owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    tabsize = args[0] if args else kwargs.get("tabsize", 8)
    check_product(len(owner), max(int(tabsize), 1), "expandtabs()")


def _check_replace(owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if len(args) >= 2:
        check_replacement(owner, args[0], args[1], args[2] if len(args) > 2 else -1)


def check_replacement(text: Any, old: Any, new: Any, count: Any = -1) -> None:
    if not isinstance(text, (str, bytes)) or not isinstance(old, (str, bytes)) or not isinstance(new, (str, bytes)):
        return
    matches = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        matches = min(matches, count)
    size = len(text) + matches * (len(new) - len(old))
    check_product(max(size, 0), 1, "replace()")


def _check_join(owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    items = args[0] if args else ()
    if isinstance(items, Sized):
        check_product(len(owner), len(items), "join()")


def _check_translate(owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    table = args[0] if args else None
    if isinstance(table, Mapping):
        longest = max((printed_size(v, current_limits().max_value_chars) for v in table.values()), default=1)
        check_product(len(owner), longest, "translate()")


def _check_to_bytes(owner: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    check_width(args[0] if args else kwargs.get("length", 1), "to_bytes() length")


_METHOD_CHECKS: Mapping[str, Callable[[Any, tuple[Any, ...], Mapping[str, Any]], None]] = {
    "ljust": _check_padding, "rjust": _check_padding, "center": _check_padding, "zfill": _check_padding,
    "expandtabs": _check_expandtabs, "replace": _check_replace, "join": _check_join,
    "translate": _check_translate, "to_bytes": _check_to_bytes,
}


# --- filters ----------------------------------------------------------------------------------


def _check_center(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    check_width(args[0] if args else kwargs.get("width", 80), "center width")


def _check_indent(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    width = args[0] if args else kwargs.get("width", 4)
    size = len(width) if isinstance(width, str) else width
    check_width(size, "indent width")
    if isinstance(value, str) and isinstance(size, int):
        check_product(size + 1, value.count("\n") + 1, "indent")


def _check_wordwrap(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    width = args[0] if args else kwargs.get("width", 79)
    wrapstring = args[2] if len(args) > 2 else kwargs.get("wrapstring") or "\n"
    if isinstance(value, str) and isinstance(width, int) and isinstance(wrapstring, str):
        check_product(len(wrapstring) + 1, len(value) // max(width, 1) + 1, "wordwrap")


def _check_format(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if isinstance(value, str):
        check_percent_format(value, dict(kwargs) if kwargs else tuple(args))


def _check_replace_filter(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    if len(args) >= 2:
        check_replacement(value, args[0], args[1], args[2] if len(args) > 2 else kwargs.get("count", -1))


def _check_join_filter(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    separator = args[0] if args else kwargs.get("d", "")
    if isinstance(value, Sized) and isinstance(separator, str):
        check_product(len(separator), len(value), "join")


def _check_groups(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    # batch(linecount) and slice(slices) pad with fill_with: the count is the size of what they build.
    check_width(args[0] if args else 1, "batch or slice count")


def _check_tojson(value: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    indent = args[0] if args else kwargs.get("indent")
    if isinstance(indent, int) and indent > 16:  # every nesting level of every line repeats it
        raise refuse(f"tojson indent {indent} is over the 16 allowed")


_FILTER_CHECKS: Mapping[str, Callable[[Any, tuple[Any, ...], Mapping[str, Any]], None]] = {
    "center": _check_center, "indent": _check_indent, "wordwrap": _check_wordwrap, "format": _check_format,
    "replace": _check_replace_filter, "join": _check_join_filter, "batch": _check_groups,
    "slice": _check_groups, "tojson": _check_tojson,
}


def guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its inputs and output bounded, its specific check first, and a time check."""
    skip = 1 if _PassArg.from_obj(func) is not None else 0  # context/environment comes first
    check = _FILTER_CHECKS.get(name)

    @functools.wraps(func)  # keeps jinja_pass_arg, so Jinja still passes the context
    def guarded(*args: Any, **kwargs: Any) -> Any:
        tick()
        for argument in args[skip:]:
            bounded(argument)
        for argument in kwargs.values():
            bounded(argument)
        if check is not None and len(args) > skip:
            if name == "join" and not isinstance(args[skip], Sized):
                args = (*args[:skip], list(args[skip]), *args[skip + 1:])  # so the check can count the items
            check(args[skip], args[skip + 1:], kwargs)
        return bounded(func(*args, **kwargs))

    return guarded
