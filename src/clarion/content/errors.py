"""What can go wrong with a template: problems found when it is saved, errors when it is rendered.

Both are expected outcomes, never crashes: a :class:`Problem` list tells the author what to fix before
saving; a :class:`RenderError` skips one message and says which part failed and why.
"""

from __future__ import annotations

from dataclasses import dataclass

from clarion.domain.errors import ClarionError


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a template, found when it is saved.

    ``part`` names the template text (``email.subject``, ``sms.text``, ``webhook.body.order.id``);
    ``locale`` is the variant (``None`` for the default content); ``line`` counts from 1 within the part.
    """

    part: str
    message: str
    kind: str = "syntax"  # syntax | unknown_variable | unsupported | mjml
    line: int | None = None
    locale: str | None = None
    suggestion: str | None = None

    def __str__(self) -> str:
        where = self.part + (f" ({self.locale})" if self.locale else "") + (f", line {self.line}" if self.line else "")
        hint = f" (did you mean {self.suggestion}?)" if self.suggestion else ""
        return f"{where}: {self.message}{hint}"


class InvalidTemplate(ClarionError, ValueError):
    """A template cannot be saved: it carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)


class RenderError(ClarionError):
    """One message could not be rendered: ``part`` failed for ``reason``; the message is skipped."""

    def __init__(self, part: str, reason: str) -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason


class LimitExceeded(RenderError):
    """A cap was reached: output size, loop iterations, range or value size, render time."""


class RenderTimeout(LimitExceeded):
    """The render ran out of time. Unlike the other limits this depends on the moment (a garbage
    collection, a loaded machine), so the message is retried; a template that is really too slow fails
    once its attempts are used up."""


class UnsafeTemplate(RenderError):
    """The sandbox refused an operation (private attributes, unsafe callables, format tricks)."""


class UndefinedVariable(RenderError):
    """A variable the contact does not have was used where a value is needed (or anywhere, when strict)."""

    def __init__(self, part: str, name: str) -> None:
        super().__init__(part, f"undefined variable {name}")
        self.name = name
