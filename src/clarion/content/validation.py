"""Checks a template when it is saved: every problem, with its part, line and a suggestion.

At send time an unknown variable renders empty (and is reported); at save time it is a problem:
``{{ contact.first_nam }}`` is almost certainly a typo for ``contact.first_name``. Custom attributes
(``contact.attributes.anything``) and custom dates cannot be checked against a schema and are allowed.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator
from dataclasses import replace

from jinja2 import TemplateSyntaxError, meta, nodes

from .context import CAMPAIGN_FIELDS, CONTACT_FIELDS, LINK_NAMES, TOP_LEVEL_NAMES
from .errors import Problem
from .limits import PART_CAPS, PartCap
from .model import Template, TemplatePart
from .sandbox import COMPILED, sandbox

# Methods of the read-only mappings a template may call: contact.get("x"), links.items() ...
_MAPPING_METHODS = ("get", "items", "keys", "values")
_UNSUPPORTED = {
    nodes.Include: "{% include %}", nodes.Extends: "{% extends %}",
    nodes.Import: "{% import %}", nodes.FromImport: "{% from ... import %}",
}


def validate(template: Template, known_fields: Collection[str] = CONTACT_FIELDS,
             known_links: Collection[str] = LINK_NAMES) -> list[Problem]:
    """Every problem of every part of the default content and of each locale variant."""
    schema = {"contact": tuple(known_fields), "campaign": CAMPAIGN_FIELDS, "links": tuple(known_links)}
    return [
        problem
        for locale, content in template.contents()
        for part in content.parts()
        for problem in validate_part(part, schema, locale)
    ]


def validate_part(part: TemplatePart, schema: dict[str, tuple[str, ...]], locale: str | None = None) -> list[Problem]:
    try:
        tree = sandbox(part.autoescape).parse(part.source)
    except TemplateSyntaxError as exc:
        return [Problem(part.name, exc.message or "syntax error", line=exc.lineno, locale=locale)]
    problems = [*_unsupported(tree), *_private_attributes(tree), *_unknown_fields(tree, schema),
                *_static_size(tree, part.name)]
    try:
        COMPILED.get(part.source, part.autoescape)  # unknown filters and tests fail here; the cache is warmed
    except TemplateSyntaxError as exc:
        problems.append(Problem(part.name, exc.message or "cannot compile", line=exc.lineno))
    else:  # finding undeclared names runs Jinja's code generator, which needs a template that compiles
        problems.extend(_unknown_names(tree, schema))
    return [replace(problem, part=part.name, locale=locale) for problem in problems]


def _unsupported(tree: nodes.Template) -> Iterator[Problem]:
    for node in tree.find_all(tuple(_UNSUPPORTED)):
        yield Problem("", f"{_UNSUPPORTED[type(node)]} is not supported: a template stands alone",
                      kind="unsupported", line=node.lineno)


def _private_attributes(tree: nodes.Template) -> Iterator[Problem]:
    for node in tree.find_all(nodes.Getattr):
        if node.attr.startswith("_"):
            yield Problem("", f"attribute {node.attr!r} is private and cannot be used", kind="unsafe",
                          line=node.lineno)


def _unknown_names(tree: nodes.Template, schema: dict[str, tuple[str, ...]]) -> Iterator[Problem]:
    allowed = set(TOP_LEVEL_NAMES) | set(sandbox(False).globals)
    for name in sorted(meta.find_undeclared_variables(tree) - allowed):
        line = next((n.lineno for n in tree.find_all(nodes.Name) if n.name == name and n.ctx == "load"), None)
        yield Problem("", f"unknown variable {name!r}", kind="unknown_variable", line=line,
                      suggestion=_suggest_top_level(name, schema))


def _suggest_top_level(name: str, schema: dict[str, tuple[str, ...]]) -> str | None:
    close = difflib.get_close_matches(name, TOP_LEVEL_NAMES, n=1)
    if close:
        return close[0]
    for owner in ("contact", "campaign", "links"):
        fields = schema[owner]
        match = name if name in fields else next(iter(difflib.get_close_matches(name, fields, n=1)), None)
        if match:
            return f"{owner}.{match}"
    return None


def _unknown_fields(tree: nodes.Template, schema: dict[str, tuple[str, ...]]) -> Iterator[Problem]:
    for owner, field, line in _field_uses(tree):
        fields = schema[owner]
        if field in fields or field in _MAPPING_METHODS or field.startswith("_"):
            continue  # private names are reported once, by _private_attributes
        close = difflib.get_close_matches(field, fields, n=1)
        yield Problem("", f"{owner} has no field {field!r}", kind="unknown_variable", line=line,
                      suggestion=f"{owner}.{close[0]}" if close else None)


def _field_uses(tree: nodes.Template) -> Iterator[tuple[str, str, int]]:
    """(owner, field, line) for ``contact.x``, ``contact["x"]``, ``campaign.x``, ``links.x``."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        owner = node.node
        if not isinstance(owner, nodes.Name) or owner.name not in ("contact", "campaign", "links"):
            continue
        if isinstance(node, nodes.Getattr):
            yield owner.name, node.attr, node.lineno
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            yield owner.name, node.arg.value, node.lineno


def _static_size(tree: nodes.Template, part: str) -> Iterator[Problem]:
    """The literal text alone over the part's cap: no message could ever be sent."""
    cap = _cap_for(part)
    text = "".join(node.data for node in tree.find_all(nodes.TemplateData))
    size = len(text) if cap.unit == "chars" else len(text.encode())
    if size > cap.limit:
        yield Problem("", f"the fixed text alone is {size:,} {cap.unit}, over the {cap.limit:,} allowed ({cap.source})",
                      kind="size")



def _cap_for(part: str) -> PartCap:
    """``push.title`` shares the ``push`` cap; ``webhook.body.order.id`` the ``webhook.body`` one."""
    if part in PART_CAPS:
        return PART_CAPS[part]
    if part.startswith("whatsapp.parameters"):
        return PART_CAPS["whatsapp.parameters"]
    channel = part.split(".")[0]
    return PART_CAPS.get(channel) or PART_CAPS["webhook.body"]
