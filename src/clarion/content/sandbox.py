"""The Jinja sandbox templates run in, and the cache of compiled templates.

On top of Jinja's ``ImmutableSandboxedEnvironment`` (no private attributes, no mutation of lists
and dicts, a sandboxed ``str.format``):

- every call, attribute look-up, filter and loop iteration checks the message's time budget;
- ``range()``, ``*``, ``**``, ``%``, ``+``, ``~``, string methods and filters that multiply sizes are
  checked before they build anything (:mod:`.guards`); every ``{% for %}`` counts its iterations;
- filters and methods that loop in Python, or worse, get inputs small enough that one call stays within
  about the time budget, which is only checked between calls (:mod:`.costs`);
- any attribute starting with ``_`` is refused, even a missing one, and the refusal is a
  :class:`~jinja2.exceptions.SecurityError` as soon as the value is used;
- undefined names render empty and are reported (or raise, when rendering strictly).

Templates are compiled once: :class:`CompiledTemplates` is an LRU keyed by (escaping, source text).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache
from threading import Lock
from typing import Any

from jinja2 import Template as JinjaTemplate
from jinja2 import nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import ChainableUndefined, Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .context import ReadOnlyMapping
from .costs import bound_cost, check_codec_call
from .errors import UndefinedVariable
from .filters import LOCALE_FILTERS
from .guards import BINOPS, bounded_range, check_method_call, guard_filter
from .limits import bounded, check_brace_format, current_limits, current_part, current_state, refuse, tick

# Wraps every loop's iterable; a name no template can write (filter names are identifiers).
LOOP_GUARD = "clarion-loop-guard"


class ReportingUndefined(ChainableUndefined):
    """Renders empty and records its name; raises when rendering strictly or when it hides an unsafe access."""

    __slots__ = ()

    @property
    def label(self) -> str:
        owner, name = self._undefined_obj, self._undefined_name
        if isinstance(owner, ReadOnlyMapping):
            return owner.path_of(name)
        return str(name) if name is not None else "value"

    def _unsafe(self) -> bool:
        return self._undefined_exception is not UndefinedError

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        if self._unsafe():
            raise SecurityError(self._undefined_message)
        raise UndefinedVariable(current_part(), self.label)

    def _met(self) -> None:
        state = current_state()
        if self._unsafe() or (state is not None and state.strict):
            self._fail_with_undefined_error()
        if state is not None:
            state.met_undefined(self.label)

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__" and name[-2:] == "__":
            raise AttributeError(name)
        if self._unsafe():
            self._fail_with_undefined_error()
        return self

    def __getitem__(self, key: Any) -> Any:
        if self._unsafe():
            self._fail_with_undefined_error()
        return self

    def __str__(self) -> str:
        self._met()
        return ""

    def __html__(self) -> str:
        return str(self)

    def __iter__(self) -> Any:
        self._met()
        return iter(())

    def __len__(self) -> int:
        self._met()
        return 0

    def __bool__(self) -> bool:  # {% if contact.attributes.vip %} is a fair question, never reported
        if self._unsafe():
            self._fail_with_undefined_error()
        return False

    # Jinja binds these to its own failure method; arithmetic, ordering or calling a missing value fails
    # the message, naming the variable: there is no sensible empty result.
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _fail_with_undefined_error
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _fail_with_undefined_error
    __pos__ = __neg__ = __pow__ = __rpow__ = __call__ = _fail_with_undefined_error
    __lt__ = __le__ = __gt__ = __ge__ = __int__ = __float__ = __complex__ = _fail_with_undefined_error


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``~`` (string concatenation) going through a size check."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:  # noqa: N802 (Jinja's visitor name)
        self.write("environment.bounded_join((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("), context.eval_ctx.autoescape)")


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` output: ``None`` prints as nothing, and the value must be within the size cap."""
    return "" if value is None else bounded(value)


def _bounded_concat(pieces: Iterable[str]) -> str:
    """Joins macro, ``{% set %}`` and ``{% filter %}`` bodies, refusing before the join allocates."""
    items = pieces if isinstance(pieces, list) else list(pieces)
    size, limit = sum(map(len, items)), current_limits().max_value_chars
    if size > limit:
        raise refuse(f"a block of about {size:,} characters is over the {limit:,} allowed")
    return "".join(items)


@pass_context
def _guard_loop(context: Context, iterable: Any) -> Any:
    state = current_state()
    return state.guard_loop(iterable) if state is not None else iterable


class ClarionSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset(BINOPS)
    code_generator_class = BoundedCodeGenerator

    def __init__(self, autoescape: bool) -> None:
        super().__init__(autoescape=autoescape, undefined=ReportingUndefined, finalize=_finalize,
                         cache_size=0, auto_reload=False)
        self.globals.pop("lipsum", None)  # lipsum(n=10**9) builds gigabytes of text
        self.globals["range"] = bounded_range
        self.filters.update(LOCALE_FILTERS)
        self.filters = {name: bound_cost(name, guard_filter(name, func)) for name, func in self.filters.items()}
        self.filters[LOOP_GUARD] = _guard_loop
        self.concat = _bounded_concat  # type: ignore[assignment]

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        tick()
        return BINOPS[operator](left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        if isinstance(attribute, str) and attribute.startswith("_"):
            return self.unsafe_undefined(obj, attribute)
        if type(obj) is ReadOnlyMapping:
            try:  # data before methods: contact.attributes.items is the attribute "items"
                return obj[attribute]
            except KeyError:
                pass
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        return super().getitem(obj, argument)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        tick()
        check_method_call(obj, args, kwargs)
        check_codec_call(obj, args, kwargs)
        return bounded(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Any:
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        fmt, is_format_map = value.__self__, value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if is_format_map and args else kwargs
            check_brace_format(fmt, () if is_format_map else args, mapping)
            return bounded(sandboxed(*args, **kwargs))

        return checked

    def bounded_join(self, items: tuple[Any, ...], autoescape: bool) -> str:
        for item in items:
            bounded(item)
        return bounded(markup_join(items) if autoescape else str_join(items))

    def compile_template(self, source: str) -> JinjaTemplate:
        """Parses, wraps every loop in the iteration guard, and compiles (raises TemplateSyntaxError)."""
        tree = self.parse(source)
        for loop in tree.find_all(nodes.For):
            guard = nodes.Filter(loop.iter, LOOP_GUARD, [], [], None, None, lineno=loop.iter.lineno)
            guard.set_environment(self)
            loop.iter = guard
        return self.template_class.from_code(self, self.compile(tree), self.make_globals(None), None)


@lru_cache(maxsize=2)
def sandbox(autoescape: bool) -> ClarionSandbox:
    """The shared environment: HTML parts escape their variables, text parts (SMS, push, ...) do not."""
    return ClarionSandbox(autoescape)


class CompiledTemplates:
    """An LRU of compiled templates keyed by (escaping, source text).

    The key is the text itself: Python hashes a string once and keeps the hash, so a look-up costs
    no re-hashing per message, and the equality check on a hit means two sources can never collide.
    Compiling happens outside the lock; two threads may compile the same source once each.
    """

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self.compiles = 0
        self.hits = 0
        self._entries: OrderedDict[tuple[bool, str], JinjaTemplate] = OrderedDict()
        self._lock = Lock()

    def cached(self, source: str, autoescape: bool) -> JinjaTemplate | None:
        """The compiled template when it is in the cache (a hit), else None; never compiles."""
        key = (autoescape, source)
        with self._lock:
            compiled = self._entries.get(key)
            if compiled is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return compiled

    def get(self, source: str, autoescape: bool) -> JinjaTemplate:
        compiled = self.cached(source, autoescape)
        if compiled is not None:
            return compiled
        key = (autoescape, source)
        compiled = sandbox(autoescape).compile_template(source)
        with self._lock:
            self._entries[key] = compiled
            self.compiles += 1
            while len(self._entries) > self.maxsize:
                self._entries.popitem(last=False)
        return compiled

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


COMPILED = CompiledTemplates()

