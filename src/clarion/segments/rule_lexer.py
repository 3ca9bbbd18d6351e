"""Tokens of the segment rule text form (``segments.rule_text``): words, `quoted names`, "strings", numbers, symbols.

Apart from refusing an over-long text, lexing never raises: a problem inside a token (an unterminated string,
a bad escape) becomes a ``bad`` token carrying the reason, so the parser reports problems in the order they
appear in the text. :class:`TokenStream` is the parser's cursor over the tokens; its errors say what was
expected and what was found.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple, NoReturn

from clarion.domain.rules import ENGAGEMENTS, METRIC_AGGREGATES, RuleSyntaxError

MAX_TEXT = 100_000  # characters in one rule's text

# Every word the grammar gives a meaning to; the printer backtick-quotes a name spelled like one of them.
KEYWORDS = frozenset(
    "and or not in next contains starts with exists between before after within days ago true false"
    " times km campaign topic performed first_performed last_performed near reachable in_segment bucket".split()
) | frozenset(METRIC_AGGREGATES) | frozenset(ENGAGEMENTS)

PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_TOKEN = re.compile(
    r"""
      (?P<space>\s+|\#[^\n]*)
    | (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<number>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    | (?P<word>[^\W\d]\w*)  # any letters, so that a non-ASCII name gets a helpful error
    | (?P<name>`(?:[^`\n]|``)*`)
    | (?P<symbol>!=|>=|<=|[()<>=,.])
    """,
    re.VERBOSE,
)


class Token(NamedTuple):
    kind: str  # word | name | string | number | symbol | other | bad | end
    text: str  # as written (for a bad token: the reason)
    value: object  # a word's or name's text, a string's or number's value
    line: int
    column: int

    def describe(self) -> str:
        """The token as an error message shows it after 'found'."""
        if self.kind == "end":
            return "the end of the rule"
        shown = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return shown if self.kind in ("string", "name") else f"'{shown}'"


def quote_name(name: str) -> str:
    """A name as the text form writes it: bare when plain and not a keyword, else in backticks."""
    if PLAIN_NAME.fullmatch(name) and name.lower() not in KEYWORDS:
        return name
    return "`" + name.replace("`", "``") + "`"


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text`` ending with an ``end`` token; stops after the first ``bad`` token."""
    if len(text) > MAX_TEXT:
        line = text.count("\n", 0, MAX_TEXT) + 1
        column = MAX_TEXT - (text.rfind("\n", 0, MAX_TEXT) + 1) + 1
        raise RuleSyntaxError(f"a rule is at most {MAX_TEXT:,} characters long", line, column)
    tokens: list[Token] = []
    line, line_start, position = 1, 0, 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        column = position - line_start + 1
        if match is None:
            tokens.append(_unmatched(text[position], line, column))
            if tokens[-1].kind == "bad":
                break
            position += 1
            continue
        if match.lastgroup == "space":
            breaks = match.group().count("\n")
            if breaks:
                line, line_start = line + breaks, match.start() + match.group().rindex("\n") + 1
        else:
            tokens.append(_token(match.lastgroup or "", match.group(), line, column))
            if tokens[-1].kind == "bad":
                break
        position = match.end()
    last = tokens[-1] if tokens else Token("end", "", None, 1, 1)
    tokens.append(Token("end", "", None, last.line, last.column + len(last.text)))  # just after the last token
    return tokens


def _unmatched(char: str, line: int, column: int) -> Token:
    if char == '"':
        return Token("bad", "unterminated string (a string ends with \" on the same line)", None, line, column)
    if char == "`":
        return Token("bad", "unterminated quoted name (a quoted name ends with ` on the same line)", None, line, column)
    return Token("other", char, None, line, column)


def _token(kind: str, text: str, line: int, column: int) -> Token:
    if kind == "string":
        try:
            return Token(kind, text, json.loads(text, strict=False), line, column)
        except json.JSONDecodeError as error:  # only a bad escape gets past the pattern
            reason = "invalid escape in a string (use \\\" \\\\ \\n \\t or \\uXXXX)"
            return Token("bad", reason, None, line, column + error.pos)
    if kind == "number":
        return _number(text, line, column)
    if kind == "name":
        name = text[1:-1].replace("``", "`")
        if not name:
            return Token("bad", "a quoted name is not empty", None, line, column)
        return Token(kind, text, name, line, column)
    if kind == "word" and not PLAIN_NAME.fullmatch(text):
        return Token("bad", f"a name other than A-Z, 0-9 and _ is written in backticks: {quote_name(text)}", None,
                     line, column)
    return Token(kind, text, text, line, column)


def _number(text: str, line: int, column: int) -> Token:
    if re.match(r"-?0[0-9]", text):
        return Token("bad", f"a number has no leading zeros: {text}", None, line, column)
    try:
        value = float(text) if any(char in text for char in ".eE") else int(text)
    except ValueError:  # more digits than Python converts
        return Token("bad", "a number with too many digits", None, line, column)
    return Token("number", text, value, line, column)


class TokenStream:
    """A cursor over the tokens, with the parser's ways of looking at, taking and demanding them."""

    def __init__(self, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._index = 0

    def _peek(self, ahead: int = 0) -> Token:
        token = self._tokens[min(self._index + ahead, len(self._tokens) - 1)]
        if token.kind == "bad":
            raise RuleSyntaxError(token.text, token.line, token.column)
        return token

    def _next(self) -> Token:
        token = self._peek()
        if token.kind != "end":
            self._index += 1
        return token

    def _is_word(self, *words: str, ahead: int = 0) -> bool:
        token = self._peek(ahead)
        return token.kind == "word" and token.text.lower() in words

    def _is_symbol(self, *symbols: str, ahead: int = 0) -> bool:
        token = self._peek(ahead)
        return token.kind == "symbol" and token.text in symbols

    def _accept_word(self, word: str) -> bool:
        if self._is_word(word):
            self._next()
            return True
        return False

    def _expect_word(self, word: str, expected: str) -> None:
        if not self._accept_word(word):
            self._fail(expected)

    def _expect_symbol(self, symbol: str, expected: str) -> None:
        if not self._is_symbol(symbol):
            self._fail(expected)
        self._next()

    def _fail(self, expected: str) -> NoReturn:
        token = self._peek()
        if token.kind == "end":
            raise RuleSyntaxError(f"unexpected end of the rule, expected {expected}", token.line, token.column)
        raise RuleSyntaxError(f"expected {expected}, found {token.describe()}", token.line, token.column)
