"""Fields whose values come from a closed set: a value outside it would silently match nobody, so it is refused.

=============  ===========================================================================================
rfm.segment    a segment name of ``scoring.rfm.SEGMENTS``, or its label as ``clarion rfm summary`` shows
               it ("Can't lose them" is ``cant_lose``)
rfm.cell       three scores 1..5, R F M ("545")
rfm.r/f/m      a score 1..5
country        an ISO 3166-1 alpha-2 code, or what ``domain.countries.normalize_country`` maps to one
               ("USA", "United Kingdom", "france")
timezone       an IANA zone name
=============  ===========================================================================================

Only ``=``, ``!=``, ``in`` and ``not in`` are checked (``contains`` and ``starts with`` take fragments, and an
order comparison of scores is a range). Text is matched without case, as the comparison itself ignores it,
and each value is replaced by the spelling stored in contacts and scores (profiles are normalised when
written, scores by ``services.rfm``): ``rfm.segment = "Can't lose them"`` compiles, and is stored, as
``rfm.segment = "cant_lose"``. A value of another type is left to the type check in ``segments.predicates``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache

from ..domain.countries import country_names, normalize_country
from ..domain.errors import FieldError
from ..domain.rules import All, AnyOf, Compare, Not, Rule, RuleError, Value
from .fields import FIELDS
from .suggest import nearest

CHECKED_OPS = ("eq", "ne", "in", "not_in")
SCORES = range(1, 6)  # RFM quintile scores, 5 the best (scoring.rfm.SCORES)


@dataclass(frozen=True)
class Vocabulary:
    """A closed set of text values. ``spellings`` maps each accepted spelling to the stored value (matched
    without case); ``canonical``, if given, decides instead (country aliases); the error ends with ``hint``,
    or with the values themselves when ``listed``."""

    what: str
    spellings: Callable[[], Mapping[str, str]]
    hint: str = ""
    canonical: Callable[[str], str | None] | None = None
    suggest: bool = True
    listed: bool = False

    def stored(self, text: str) -> str | None:
        if self.canonical is not None:
            return self.canonical(text)
        return _folded(self).get(text.casefold())

    def refusal(self, text: str) -> str:
        values = self.spellings()
        hint = f" ({', '.join(dict.fromkeys(values.values()))})" if self.listed else self.hint
        message = f"{text!r} is not {self.what}{hint}"
        close = nearest(text, values) if self.suggest else []
        if close:
            value = values[close[0]]
            shown = repr(value) if value == close[0] else f"{value!r} ({close[0]})"
            message += f"; did you mean {shown}?"
        return message


@lru_cache(maxsize=8)
def _folded(vocabulary: Vocabulary) -> dict[str, str]:
    folded: dict[str, str] = {}
    for spelling, value in vocabulary.spellings().items():
        folded.setdefault(spelling.casefold(), value)
    return folded


@lru_cache(maxsize=1)
def _rfm_segments() -> dict[str, str]:
    from ..scoring.rfm import LABELS, SEGMENTS  # numpy comes with it: loaded only when a rule needs it

    return {**{segment: segment for segment in SEGMENTS}, **{label: value for value, label in LABELS.items()}}


@lru_cache(maxsize=1)
def _rfm_cells() -> dict[str, str]:
    cells = (f"{r}{f}{m}" for r in SCORES for f in SCORES for m in SCORES)
    return {cell: cell for cell in cells}


@lru_cache(maxsize=1)
def _countries() -> dict[str, str]:
    return {**{code: code for code in country_names()}, **{name: code for code, name in country_names().items()}}


def _country(text: str) -> str | None:
    try:
        return normalize_country(text)
    except FieldError:
        return None


@lru_cache(maxsize=1)
def _zones() -> dict[str, str]:
    from zoneinfo import available_timezones

    from ..domain.profiles import NOT_ZONES  # the zones a contact can have (profiles.normalize_timezone)

    return {zone: zone for zone in sorted(available_timezones() - NOT_ZONES)}


VOCABULARIES: dict[str, Vocabulary] = {
    "rfm.segment": Vocabulary("an RFM segment", _rfm_segments, listed=True),
    "rfm.cell": Vocabulary("an RFM cell", _rfm_cells, " (three scores 1 to 5, R F M, such as '545')",
                           suggest=False),
    "country": Vocabulary("an ISO 3166-1 country code or name", _countries, canonical=_country),
    "timezone": Vocabulary("an IANA time zone", _zones),
}
SCORE_FIELDS = ("rfm.r", "rfm.f", "rfm.m")


def canonical_value(field: str, op: str, value: Value) -> Value:
    """``value`` in the stored spelling when ``field`` has a closed set of values; RuleError outside it."""
    if op not in CHECKED_OPS or (field not in VOCABULARIES and field not in SCORE_FIELDS):
        return value
    if isinstance(value, tuple):
        return tuple(_canonical_item(field, item) for item in value)
    return _canonical_item(field, value)


def _canonical_item(field: str, item: object) -> object:
    if field in SCORE_FIELDS:
        if isinstance(item, int | float) and not isinstance(item, bool) and item not in SCORES:
            raise RuleError(f"{item!r} is not an RFM score (a whole number from 1 to 5)", field)
        return item
    if not isinstance(item, str):
        return item
    vocabulary = VOCABULARIES[field]
    stored = vocabulary.stored(item)
    if stored is None:
        raise RuleError(vocabulary.refusal(item), field)
    return stored


def canonical_rule(rule: Rule) -> Rule:
    """The rule with every closed-set value in its stored spelling (RuleError for one outside its set)."""
    if isinstance(rule, All | AnyOf):
        return type(rule)(tuple(canonical_rule(item) for item in rule.items))
    if isinstance(rule, Not):
        return Not(canonical_rule(rule.item))
    if isinstance(rule, Compare):
        field = FIELDS[rule.field].name if rule.field in FIELDS else rule.field
        value = canonical_value(field, rule.op, rule.value)
        return rule if value == rule.value else replace(rule, value=value)
    return rule
