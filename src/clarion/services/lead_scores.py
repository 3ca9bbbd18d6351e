"""Lead scoring: points per event and per attribute rule, with an optional half-life, set-based in SQL.

The configuration is one JSON document (``workspace_settings`` key ``lead_scoring``), set from a file
(``clarion leads config FILE``) or the API (``PUT /api/leads/config``):

    {"half_life_days": 30,
     "rules": [
       {"name": "viewed a product", "event": "Product Viewed", "points": 1, "max_points": 20},
       {"name": "big order", "event": "Order Completed", "where": "revenue > 100", "points": 10,
        "within_days": 365},
       {"name": "in the US", "rule": "country = \\"US\\"", "points": 5},
       {"name": "unsubscribed", "rule": "not reachable(\\"email\\")", "points": -20}]}

- An **event rule** gives ``points`` for every event named ``event`` matching ``where`` (property
  filters in the text form of a ``performed(...)`` filter list, comma separated) in the last
  ``within_days`` (all time by default). With ``half_life_days`` an event's points halve every
  half-life of its age: ``points * 0.5 ** (age_days / half_life_days)``. ``max_points`` caps a rule's
  total per contact.
- An **attribute rule** gives ``points`` once when the segment rule ``rule`` holds for the contact.
- A contact's score is the sum over the rules; contacts no rule gives points to keep no score
  (NULL), and a contact scored before that no longer earns points gets 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from time import perf_counter
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Column, Connection, Float, MetaData, Table, and_, func, literal, select, union_all, update

from ..domain.errors import FieldError
from ..domain.rules import Performed, RuleError, RuleSyntaxError
from ..segments.behaviour import event_conditions
from ..segments.compiler import CompileContext, compile_rule
from ..segments.rule_text import parse_rule
from ..store.schema import events
from ..store.schema_scores import contact_scores
from ..store.sql import insert_for, scratch_tables, tune_for_analytics
from ..store.types import Id, UtcDateTime, days_since, least
from ..store.workspace import read_document, write_document
from .clock import utcnow

SETTINGS_KEY = "lead_scoring"
_scratch = MetaData()
_points = Table("clarion_lead_points", _scratch, Column("contact_id", Id, primary_key=True),
                Column("score", Float), prefixes=["TEMPORARY"])


class LeadRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    points: float = Field(ge=-1_000_000, le=1_000_000, allow_inf_nan=False)
    event: str | None = Field(None, min_length=1, max_length=200)
    where: str | None = Field(None, max_length=10_000)
    within_days: int | None = Field(None, ge=1, le=36_500)
    max_points: float | None = Field(None, gt=0, le=1_000_000_000, allow_inf_nan=False)
    rule: str | None = Field(None, min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _one_kind(self) -> LeadRule:
        if (self.event is None) == (self.rule is None):
            raise ValueError("a lead rule has either an event or a rule")
        if self.rule is not None and (self.where or self.within_days or self.max_points):
            raise ValueError("where, within_days and max_points belong to event rules")
        return self

    def performed(self) -> Performed:
        """The event rule as a performed() condition (its filters and window).

        ``where`` is parsed as the filter list of ``performed(event, ...)``; anything that would reach
        beyond it (a closing parenthesis, a count, a comment) is refused, and error columns are given
        in the ``where`` text itself.
        """
        prefix = f"performed({json.dumps(self.event)}, "
        node: object = Performed(self.event)
        if self.where:
            try:
                node = parse_rule(f"{prefix}{self.where})")
            except RuleSyntaxError as exc:
                column = exc.column - len(prefix) if exc.line == 1 else exc.column
                raise RuleSyntaxError(exc.reason, exc.line, max(1, column)) from None
        if not isinstance(node, Performed) or (node.count_op, node.count, node.within_days) != ("gte", 1, None):
            raise RuleError("where holds property filters only, e.g. 'revenue > 100, sku starts with \"A\"'",
                            "where")
        return Performed(self.event, node.where, within_days=self.within_days)


class LeadScoring(BaseModel):
    model_config = ConfigDict(extra="forbid")

    half_life_days: float | None = Field(None, gt=0, le=36_500, allow_inf_nan=False)
    rules: list[LeadRule] = Field(default_factory=list, max_length=200)


@dataclass
class LeadScoreResult:
    scored: int
    zeroed: int
    rules: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_config(document: Any) -> LeadScoring:
    """Validate a configuration document; FieldError names the rule and field at fault."""
    try:
        config = LeadScoring.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise FieldError(".".join(str(part) for part in error["loc"]) or "config", error["msg"]) from None
    for index, item in enumerate(config.rules):
        try:
            item.performed() if item.event else parse_rule(item.rule)
        except RuleError as exc:
            raise FieldError(f"rules.{index}.{'where' if item.event else 'rule'}", str(exc)) from None
    return config


class LeadScoreService:
    @staticmethod
    def config(conn: Connection) -> LeadScoring:
        document = read_document(conn, SETTINGS_KEY)
        return LeadScoring() if document is None else LeadScoring.model_validate(document)

    @staticmethod
    def set_config(conn: Connection, document: Any, context: CompileContext) -> LeadScoring:
        config = parse_config(document)
        for index, item in enumerate(config.rules):  # unknown fields and segments, before anything is stored
            if item.rule:
                try:
                    compile_rule(parse_rule(item.rule), context)
                except RuleError as exc:
                    raise FieldError(f"rules.{index}.rule", str(exc)) from None
        write_document(conn, SETTINGS_KEY, config.model_dump(mode="json", exclude_none=True), utcnow())
        return config

    def compute(self, conn: Connection, context: CompileContext) -> LeadScoreResult:
        started = perf_counter()
        config = self.config(conn)
        parts = [self._event_points(item, config.half_life_days, context) if item.event
                 else self._rule_points(item, context) for item in config.rules]
        tune_for_analytics(conn)
        with scratch_tables(conn, _points):
            scored = self._fill(conn, parts)
            zeroed = self._store(conn, context.now)
        return LeadScoreResult(scored, zeroed, len(config.rules), round(perf_counter() - started, 4))

    @staticmethod
    def _rule_points(item: LeadRule, context: CompileContext):
        holders = compile_rule(parse_rule(item.rule), context).subquery("lead_rule")
        return select(holders.c[0].label("contact_id"), literal(item.points, Float).label("points"))

    @staticmethod
    def _event_points(item: LeadRule, half_life: float | None, context: CompileContext):
        weight = literal(1.0)
        if half_life:
            age = days_since(events.c.occurred_at, literal(context.now, UtcDateTime()))
            weight = func.exp(literal(-math.log(2) / half_life) * age)
        total = func.sum(literal(item.points, Float) * weight)
        if item.max_points is not None:
            total = least(total, literal(item.max_points, Float))
        return (select(events.c.contact_id, total.label("points"))
                .where(and_(*event_conditions(item.performed(), context.clock))).group_by(events.c.contact_id))

    @staticmethod
    def _fill(conn: Connection, parts: list) -> int:
        if not parts:
            return 0
        every = union_all(*parts).subquery("lead_parts")
        conn.execute(_points.insert().from_select(
            ["contact_id", "score"],
            select(every.c[0], func.sum(every.c[1])).group_by(every.c[0])))
        return conn.execute(select(func.count()).select_from(_points)).scalar_one()

    @staticmethod
    def _store(conn: Connection, now) -> int:
        s = contact_scores
        zeroed = conn.execute(update(s).where(s.c.lead_score.is_not(None), s.c.lead_score != 0,
                                              s.c.contact_id.not_in(select(_points.c.contact_id)))
                              .values(lead_score=0.0, lead_at=now)).rowcount
        statement = insert_for(conn, s).from_select(
            ["contact_id", "lead_score", "lead_at"],
            select(_points.c.contact_id, _points.c.score, literal(now, UtcDateTime())).where(literal(True)))
        conn.execute(statement.on_conflict_do_update(index_elements=["contact_id"], set_={
            "lead_score": statement.excluded.lead_score, "lead_at": statement.excluded.lead_at}))
        return zeroed

    @staticmethod
    def top(conn: Connection, limit: int = 10) -> list[dict[str, Any]]:
        s = contact_scores
        rows = conn.execute(select(s.c.contact_id, s.c.lead_score, s.c.lead_at).where(s.c.lead_score.is_not(None))
                            .order_by(s.c.lead_score.desc(), s.c.contact_id).limit(limit))
        return [dict(row._mapping) for row in rows]
