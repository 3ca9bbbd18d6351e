"""HTML email content: MJML compiled with mrml, CSS inlined with css_inline, and text derived with inscriptis.

All three tools parse HTML, and Jinja tags are not HTML: ``{% if a < b %}`` is a broken tag to them,
and ``{{ links.unsubscribe }}`` in an ``href`` may be escaped. So each Jinja tag is swapped for a
placeholder (lowercase letters and digits, which no HTML tool alters) before the tool runs and put
back after, and we check that none was lost or moved: a block tag (``{% ... %}``) moved across an
element would change what the template means.

This work is done once per template (when it is saved, or the first time its text part is needed),
never per message: inscriptis alone takes about 5 ms for a 40 KB email.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from functools import lru_cache

import css_inline
import mrml
from inscriptis import get_text
from inscriptis.html_engine import Inscriptis
from inscriptis.model.config import ParserConfig
from jinja2 import TemplateSyntaxError
from lxml.etree import Comment, ParserError
from lxml.html import Element, HtmlElement, document_fromstring
from markupsafe import escape

from .errors import InvalidTemplate, Problem
from .sandbox import sandbox

_JINJA_TAG = r"(?P<tag>\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})"
_TAG = re.compile(_JINJA_TAG, re.DOTALL)
_SPACED_TAG = re.compile(r"\s*" + _JINJA_TAG + r"\s*", re.DOTALL)
_BLANK_LINES = re.compile(r"\n{3,}")
# Keeps the <style> blocks as well as inlining them: media queries and client-specific rules
# (#outlook a, ...) only work from a <style> block. Remote stylesheets are never fetched.
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=True, keep_link_tags=True)
_TEXT_CONFIG = ParserConfig(display_links=True)  # "[Shop now](https://...)": links survive in text


@dataclass(frozen=True)
class _Shielded:
    """A template with its Jinja tags replaced by placeholders ``<marker><n>q``."""

    text: str
    tags: tuple[str, ...]
    lines: tuple[int, ...]  # the line each tag starts on
    marker: str

    def is_block(self, index: int) -> bool:
        return self.tags[index].lstrip().startswith("{%")

    def pattern(self) -> re.Pattern[str]:
        # The comment around a placeholder may come back escaped (&lt;!--) from a title or an attribute.
        return re.compile(r"(?:<!--|&lt;!--)?" + re.escape(self.marker) + r"(\d+)q(?:-->|--&gt;)?")


def _shield(source: str, with_spaces: bool) -> _Shielded:
    """Placeholders are HTML comments where markup may stand: HTML parsers move stray text out of
    tables ("foster parenting"), which would carry a ``{% for %}`` away from the rows it repeats,
    but leave comments in place. In attributes and titles they are bare words.

    ``with_spaces``: the white space around each tag goes with it, since mrml drops white space
    next to comments (``{{ price }} {% if %}`` would come back as ``{{ price }}{% if %}``)."""
    marker = "zq" + secrets.token_hex(4)
    while marker in source:  # pragma: no cover - a 32-bit random marker already in the text
        marker = "zq" + secrets.token_hex(4)
    tags: list[str] = []
    lines: list[int] = []
    markup = _TAG.sub(lambda m: " " * len(m.group(0)), source)  # so "<" in {% if a < b %} is not markup

    def swap(match: re.Match[str]) -> str:
        tags.append(match.group(0))
        lines.append(source.count("\n", 0, match.start("tag")) + 1)
        placeholder = f"{marker}{len(tags) - 1}q"
        return placeholder if _inside_markup(markup, match.start("tag")) else f"<!--{placeholder}-->"

    return _Shielded((_SPACED_TAG if with_spaces else _TAG).sub(swap, source), tuple(tags), tuple(lines), marker)


_TEXT_ONLY_ELEMENTS = ("mj-title", "mj-preview", "title", "style", "mj-style", "textarea")


def _inside_markup(source: str, position: int) -> bool:
    """Inside a tag (an attribute) or inside an element whose content is text only."""
    if source.rfind("<", 0, position) > source.rfind(">", 0, position):
        return True
    return any(source.rfind(f"<{name}", 0, position) > source.rfind(f"</{name}", 0, position)
               for name in _TEXT_ONLY_ELEMENTS)


def _unshield(shielded: _Shielded, output: str, expressions_required: bool) -> tuple[str, list[int]]:
    """``output`` with the tags back, and the indexes of the tags lost or moved.

    Block tags (``{% ... %}``) must each come back once, in order. An expression may be repeated
    (MJML copies the title into the page) and, unless ``expressions_required``, dropped (text loses
    images), but never moved across a block tag: out of its loop, or into another branch.
    """
    pattern = shielded.pattern()
    blocks = [i for i in range(len(shielded.tags)) if shielded.is_block(i)]
    region = [sum(1 for b in blocks if b < i) for i in range(len(shielded.tags))]  # block tags before each tag
    wrong: set[int] = set()
    seen: set[int] = set()
    blocks_passed = 0
    for match in pattern.finditer(output):
        index = int(match.group(1))
        seen.add(index)
        if not shielded.is_block(index):
            if region[index] != blocks_passed:
                wrong.add(index)
        elif blocks_passed < len(blocks) and blocks[blocks_passed] == index:
            blocks_passed += 1
        else:
            wrong.add(index)
    wrong.update(blocks[blocks_passed:])
    if expressions_required:
        wrong.update(i for i in range(len(shielded.tags)) if i not in seen)
    return pattern.sub(lambda m: shielded.tags[int(m.group(1))], output), sorted(wrong)


def _tag_problems(shielded: _Shielded, wrong: list[int], part: str, tool: str) -> list[Problem]:
    return [
        Problem(part, f"{tool} lost or moved the Jinja tag {shielded.tags[i].strip()!r}: keep tags in text, "
                      "attributes, between elements or (in MJML) in <mj-raw>", kind="mjml", line=shielded.lines[i])
        for i in wrong
    ]


def compile_mjml(source: str, part: str = "email.html") -> str:
    """MJML (with Jinja tags) to HTML with inlined CSS; raises :class:`InvalidTemplate` with the problems."""
    shielded = _shield(source, with_spaces=True)
    try:
        output = mrml.to_html(shielded.text)
    except OSError as exc:  # mrml reports parse errors as OSError, without a position
        raise InvalidTemplate([Problem(part, f"MJML cannot be parsed: {exc}", kind="mjml")]) from None
    problems = [Problem(part, f"MJML: {warning.kind}", kind="mjml",
                        line=shielded.text.count("\n", 0, warning.start) + 1)
                for warning in output.warnings]
    html, wrong = _unshield(shielded, _inline(output.content, part), expressions_required=True)
    problems += _tag_problems(shielded, wrong, part, "MJML")
    if problems:
        raise InvalidTemplate(problems)
    return html


def inline_css(html: str, part: str = "email.html") -> str:
    """Copies ``<style>`` rules onto the elements (many mail clients ignore style blocks)."""
    shielded = _shield(html, with_spaces=True)
    inlined, wrong = _unshield(shielded, _inline(shielded.text, part), expressions_required=True)
    if wrong:
        raise InvalidTemplate(_tag_problems(shielded, wrong, part, "CSS inlining"))
    return inlined


def _inline(html: str, part: str) -> str:
    try:
        return _INLINER.inline(html)
    except css_inline.InlineError as exc:
        raise InvalidTemplate([Problem(part, f"CSS cannot be inlined: {exc}", kind="mjml")]) from None


@lru_cache(maxsize=256)
def text_template(html_source: str) -> str | None:
    """A text/plain template derived from an HTML template, or ``None`` when the tags do not survive.

    ``None`` means the text must be derived from each rendered message instead (:func:`html_to_text`).
    """
    shielded = _shield(html_source, with_spaces=False)  # inscriptis collapses white space as a browser would
    tree = _html_tree(shielded.text)
    if tree is None:
        return None
    _placeholders_as_text(tree, shielded.marker)
    text, wrong = _unshield(shielded, tidy_text(Inscriptis(tree, _TEXT_CONFIG).get_text()), expressions_required=False)
    if wrong:
        return None
    try:
        sandbox(False).parse(text)
    except TemplateSyntaxError:
        return None
    return text


def _html_tree(html: str) -> HtmlElement | None:
    try:
        return document_fromstring(html)
    except ParserError:
        return None


def _placeholders_as_text(tree: HtmlElement, marker: str) -> None:
    """inscriptis prints no comments: each placeholder comment becomes text where it stands, inside a
    row (between rows) or a cell (between cells) when it stands in a table, which would move bare text."""
    for comment in list(tree.iter(Comment)):
        if not comment.text or not comment.text.startswith(marker):
            continue
        parent = comment.getparent()
        if parent.tag in ("table", "tbody", "thead", "tfoot", "tr"):
            holder = Element("td") if parent.tag == "tr" else _row_with_cell()
            (holder if parent.tag == "tr" else holder[0]).text = comment.text
            holder.tail = comment.tail
            parent.replace(comment, holder)
        else:
            _replace_with_text(comment, comment.text + (comment.tail or ""))


def _row_with_cell() -> HtmlElement:
    row = Element("tr")
    row.append(Element("td"))
    return row


def _replace_with_text(node: HtmlElement, text: str) -> None:
    previous, parent = node.getprevious(), node.getparent()
    if previous is not None:
        previous.tail = (previous.tail or "") + text
    else:
        parent.text = (parent.text or "") + text
    node.tail = None
    parent.remove(node)


def html_to_text(html: str) -> str:
    return tidy_text(get_text(html, _TEXT_CONFIG))


def tidy_text(text: str) -> str:
    """Removes the layout padding inscriptis keeps from tables, and runs of blank lines."""
    lines = "\n".join(line.strip() for line in text.splitlines())
    return _BLANK_LINES.sub("\n\n", lines).strip()


def with_preheader(html: str, preheader: str) -> str:
    """Puts the (escaped) preheader as hidden text at the start of the body, where inboxes read it."""
    hidden = ('<div style="display:none;max-height:0;overflow:hidden;mso-hide:all" aria-hidden="true">'
              f"{escape(preheader)}</div>")
    body = max(html.find("<body"), html.find("<BODY"))
    start = html.find(">", body) + 1 if body >= 0 else 0
    return html[:start] + hidden + html[start:]
