"""One filter call cannot outrun the render budget: inputs that would make it slow are refused before it runs.

The time budget is checked between calls, so each refusal here must come from the check made before the
call (its message names the filter and the bound), and must be a :class:`LimitExceeded` that is not a
:class:`RenderTimeout`: the worker retries timeouts, but a template over a bound fails once, for good.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from clarion.content.costs import (
    CHECKS,
    DRAWING_FILTERS,
    ITEM_FILTERS,
    LINEAR_FILTERS,
    TEXT_FILTERS,
)
from clarion.content.errors import RenderTimeout
from clarion.content.render import (
    Content,
    LimitExceeded,
    RenderContext,
    RenderLimits,
    RenderSettings,
    SmsContent,
    Template,
    render,
)
from clarion.content.sandbox import LOOP_GUARD, sandbox

# A budget no test reaches: a refusal can only come from a bound checked before the call.
NO_CLOCK = dataclasses.replace(RenderLimits(), cpu_seconds=3600, wall_seconds=3600)


def sms(source: str, limits: RenderLimits = NO_CLOCK) -> str:
    template = Template(Content(sms=SmsContent(source)))
    return render(template, RenderContext(contact={"id": 1, "first_name": "Ana"}),
                  RenderSettings(limits=limits)).sms.text


# (template, what the refusal says)
HOSTILE = [
    ("{{ ('a'*999999)|wordwrap(1, true, '')|length }}", "wordwrap takes at most 65,536 characters, not 999,999"),
    ("{{ ('a'*60000)|wordwrap(1, true, '')|length }}", "makes about 60,000 lines, over the 10,000 allowed"),
    ("{% filter wordwrap(2) %}{{ 'a' * 30000 }}{% endfilter %}", "over the 10,000 allowed"),
    ("{{ ('ab '*30000)|urlize|length }}", "urlize takes at most 65,536 characters, not 90,000"),
    ("{{ 'see x:y'|urlize(extra_schemes=range(100)|map('string')|list) }}", "at most 16 extra schemes"),
    ("{{ ('a '*40000)|title|length }}", "title takes at most 65,536 characters"),
    ("{{ ('<>'*40000)|striptags|length }}", "striptags takes at most 65,536 characters"),
    ("{{ ('\\n'*70000)|indent(0)|length }}", "indent takes at most 65,536 characters"),
    ("{{ ('é'*70000)|urlencode|length }}", "urlencode takes at most 65,536 characters"),
    ("{{ range(10000)|list|pprint|length }}", "pprint takes values of at most 65,536 printed characters"),
    ("{{ ('a'*999999)|sort|length }}", "sort takes at most 10,000 items, not 999,999"),
    ("{{ ('a'*20000)|unique|list|length }}", "unique takes at most 10,000 items, not 20,000"),
    ("{{ ('a'*20000)|max }}", "max takes at most 10,000 items"),
    ("{{ ('a'*20000)|map('upper')|list|length }}", "map takes at most 10,000 items"),
    ("{{ ('a'*20000)|select|list|length }}", "select takes at most 10,000 items"),
    ("{{ ('a'*20000)|batch(2)|list|length }}", "batch takes at most 10,000 items"),
    ("{{ ('a'*20000)|join(',')|length }}", "join takes at most 10,000 items"),
    ("{{ (range(10000)|list + [1])|sum }}", "sum takes at most 10,000 items, not 10,001"),
    ("{{ [[1]]*1000|sum(start=[]) }}", "sum adds numbers: start must be a number"),
    ("{{ 5|round(-10**9) }}", "round precision 1,000,000,000 is over the 1,000 allowed"),
    ("{{ 5.5|round(10**6, 'floor') }}", "round precision 1,000,000 is over the 1,000 allowed"),
    ("{{ ('é'*100000).encode('punycode')|length }}", "the punycode codec takes at most 1,000 characters"),
    ("{{ ('é'*5000).encode('idna')|length }}", "the idna codec takes at most 1,000 characters"),
    ("{{ ('a'*5000).encode().decode('punycode')|length }}", "the punycode codec takes at most 1,000"),
    ("{{ now|date('y' * 999) }}", "a date pattern is at most 200 characters, not 999"),
    ("{{ now|datetime(format='H' * 300) }}", "a date pattern is at most 200 characters, not 300"),
]


@pytest.mark.parametrize(("source", "reason"), HOSTILE, ids=[reason for _, reason in HOSTILE])
def test_a_slow_call_is_refused_before_it_runs(source, reason):
    # when a template whose one call would run far past the budget is rendered (with no clock at all)
    with pytest.raises(LimitExceeded) as refused:
        sms(source)
    # then the bound refused it, naming itself, as a failure that is not retried
    assert reason in str(refused.value)
    assert not isinstance(refused.value, RenderTimeout)


def test_an_iterator_is_drawn_only_up_to_the_bound():
    # given a filter handed an iterator of 20,000 items (no template builds one today; a future global could)
    drawn = 0

    def numbers() -> Iterator[str]:
        nonlocal drawn
        for number in range(20_000):
            drawn += 1
            yield str(number)

    environment = sandbox(False)
    # when it is sorted
    with pytest.raises(LimitExceeded, match="sort takes at most 10,000 items, and was given more"):
        environment.filters["sort"](environment, numbers())
    # then no more than the bound and one was ever taken from it
    assert drawn == 10_001


@pytest.mark.parametrize(("source", "expected"), [
    ("{{ 'The quick brown fox jumps over the lazy dog'|wordwrap(16) }}",
     "The quick brown\nfox jumps over\nthe lazy dog"),
    ("{{ 'Write to ana@shop.example'|urlize }}",
     'Write to <a href="mailto:ana@shop.example">ana@shop.example</a>'),
    ("{{ 'see web+shop:cart'|urlize(extra_schemes=['web+shop:']) }}",
     'see <a href="web+shop:cart" rel="noopener">web+shop:cart</a>'),
    ("{{ 'hello there'|title }}", "Hello There"),
    ("{{ '<b>Hi</b> Ana'|striptags }}", "Hi Ana"),
    ("{{ ['pear', 'apple', 'fig']|sort|join(', ') }}", "apple, fig, pear"),
    ("{{ [3, 1, 3]|unique|list }}", "[3, 1]"),
    ("{{ [{'p': 2.5}, {'p': 4}]|sum(attribute='p') }}", "6.5"),
    ("{{ [1, 2]|sum(start=10) }}", "13"),
    ("{{ 42.55|round(1, 'floor') }}", "42.5"),
    ("{{ range(10000)|map('string')|list|length }}", "10000"),
    ("{{ ('a'*65536)|wordwrap(79)|length }}", str(65536 + 65536 // 79)),
    ("{{ 'bücher.example'.encode('idna').decode() }}", "xn--bcher-kva.example"),
    ("{{ '2026-03-01'|date('EEEE d MMMM y') }}", "Sunday 1 March 2026"),
    ("{{ {'a': 1, 'b': 'x y'}|urlencode }}", "a=1&b=x+y"),
])
def test_ordinary_uses_of_the_bounded_filters_are_untouched(source, expected):
    assert sms(source) == expected


def test_the_bounds_follow_the_render_limits():
    # given limits with a smaller text bound
    small = dataclasses.replace(NO_CLOCK, max_filter_text=100, max_filter_items=10)
    # when a filter is given a little more than each
    with pytest.raises(LimitExceeded, match="wordwrap takes at most 100 characters, not 101"):
        sms("{{ ('a'*101)|wordwrap(79) }}", small)
    with pytest.raises(LimitExceeded, match="sort takes at most 10 items, not 11"):
        sms("{{ range(11)|sort|list }}", small)
    # then exactly the bound still passes
    assert sms("{{ range(10)|sort|list|length }}", small) == "10"


def test_every_filter_of_the_sandbox_has_been_audited():
    # given the filters a template may use
    names = set(sandbox(False).filters) - {LOOP_GUARD}
    # then each is bounded by its input size, by a specific check, or listed as linear in C
    audited = TEXT_FILTERS | ITEM_FILTERS | DRAWING_FILTERS | set(CHECKS) | LINEAR_FILTERS
    assert names - audited == set(), "a filter nobody has bounded; see clarion.content.costs"
