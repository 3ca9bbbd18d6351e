"""The template sandbox: injection attempts are blocked, resource abuse is capped, secrets never leak.

Every case is a template a hostile or careless author could save. Each must end in a
:class:`RenderError` (the message is skipped) or a harmless empty value, quickly, and no output or
error message may contain the secret planted in the environment.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime

import pytest

from clarion.content.render import (
    Content,
    EmailContent,
    LimitExceeded,
    RenderContext,
    RenderError,
    RenderLimits,
    RenderSettings,
    SmsContent,
    Template,
    render,
    validate,
)

SECRET = "s3cr3t-9f1c"
CONTACT = {"id": 1, "first_name": "Ana", "locale": "en", "attributes": {"tier": "gold"}}

# (template, what it tries)
INJECTIONS = [
    ("{{ ''.__class__.__mro__ }}", "reach object through a string's class"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "list every class"),
    ("{{ cycler.__init__.__globals__ }}", "a global's function globals"),
    ("{{ cycler.__init__.__globals__.os.environ }}", "the environment through os"),
    ("{{ self._TemplateReference__context }}", "the template context through a mangled name"),
    ("{{ lipsum.__globals__ }}", "lipsum's globals"),
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", "run a command"),
    ("{{ namespace.__init__.__globals__ }}", "namespace's globals"),
    ("{{ joiner.__init__.__globals__ }}", "joiner's globals"),
    ("{{ range.__self__ }}", "a builtin's module"),
    ("{{ '{0.__class__}'.format(contact) }}", "attribute access inside str.format"),
    ("{{ '{0.__class__.__init__.__globals__}'.format(cycler) }}", "globals inside str.format"),
    ("{{ '{x.__class__}'.format_map({'x': contact}) }}", "attribute access inside format_map"),
    ("{{ x.__dict__ }}", "an undefined name's __dict__"),
    ("{{ contact.__dict__ }}", "the contact's __dict__"),
    ("{{ contact._data }}", "the contact view's private storage"),
    ("{{ contact | attr('__class__') }}", "the attr filter"),
    ("{{ '' | attr('\\x5f\\x5fclass\\x5f\\x5f') }}", "an escaped dunder"),
    ("{{ contact.items.__self__ }}", "a bound method's owner"),
    ("{{ now.__class__.__init__.__globals__ }}", "a datetime's class"),
    ("{% set g = cycler.__init__.__globals__ %}{{ g }}", "a dunder through set"),
    ("{{ contact.attributes.pop('tier') }}", "mutate the contact"),
    ("{{ [].append(1) }}", "mutate a list"),
]

# (template, what it tries)
RESOURCE_ABUSE = [
    ("{% for i in range(10**9) %}{% endfor %}", "a billion loop iterations"),
    ("{{ range(10**6) | list | length }}", "a million-item list"),
    ("{{ 'a' * 10**9 }}", "a gigabyte string"),
    ("{{ '%s' % (('a',) * 10**7) }}", "a ten-million-item tuple formatted"),
    ("{{ [0] * 10**8 }}", "a huge list"),
    ("{{ 10 ** (10 ** 10) }}", "a huge integer"),
    ("{{ 'a'.center(10**9) }}", "padding with a str method"),
    ("{{ 'a'.ljust(10**9) }}", "padding with ljust"),
    ("{{ 'a' | center(10**9) }}", "padding with a filter"),
    ("{{ 'a' | indent(10**9) }}", "indent width"),
    ("{{ '%999999999s' % 'a' }}", "a huge % width"),
    ("{{ '%*s' % (10**9, 'a') }}", "a * width"),
    ("{{ '{:>999999999}'.format('a') }}", "a huge format width"),
    ("{{ '{:{w}}'.format('a', w=10**9) }}", "a nested format width"),
    ("{{ '%s' | format('a' * 10**6 ~ 'b') }}", "the format filter"),
    ("{{ ('a' * 1000).replace('', 'b' * 1000) }}", "replace amplification"),
    ("{{ range(10000) | join('x' * 1000) }}", "join amplification"),
    ("{{ 'a\\tb'.expandtabs(10**8) }}", "tab expansion"),
    ("{{ (1).to_bytes(10**9, 'big') }}", "to_bytes"),
    ("{{ lipsum(10**9) }}", "lipsum"),
    ("{{ range(10) | batch(10**9, 'x') | list }}", "batch padding"),
    ("{{ [1, 2] | tojson(indent=10**6) }}", "tojson indent"),
    ("{{ 'ab' | wordwrap(1, wrapstring='x' * 900000) }}", "wordwrap separators"),
    ("{% set b = 'x' * 900000 %}{{ [b, b, b] }}", "printing a list of large strings"),
    ("{% set b = 'x' * 900000 %}{{ b ~ b }}", "concatenating large strings"),
    ("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
     "doubling a string in a loop"),
    ("{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}{% endfor %}",
     "doubling a list in a loop"),
    ("{% set ns = namespace(n=3) %}{% for i in range(64) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
     "squaring an integer in a loop"),
    ("{% set r = range(10000) | list %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}",
     "nested loops over a list"),
    ("{% macro m() %}{% for i in range(10000) %}{{ 'y' * 900 }}{% endfor %}{% endmacro %}{{ m() | length }}",
     "a macro building a large block"),
    ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", "infinite recursion"),
    ("{% for i in range(10000) %}{% set x = ('a' * 100000) | upper %}{% endfor %}", "burning CPU"),
]


@pytest.fixture(autouse=True)
def planted_secret(monkeypatch):
    monkeypatch.setenv("CLARION_TEST_SECRET", SECRET)


def attempt(source: str, settings: RenderSettings | None = None) -> str:
    """What a render of ``source`` as an SMS and as an email body produces: its texts or its error."""
    template = Template(Content(sms=SmsContent(source), email=EmailContent(subject="s", html=source)))
    try:
        message = render(template, RenderContext(contact=CONTACT, now=datetime(2026, 1, 1, tzinfo=UTC)),
                         settings or RenderSettings())
    except RenderError as exc:
        return f"{type(exc).__name__}: {exc}"
    return f"{message.sms.text}\n{message.email.html}\n{message.email.text}"


@pytest.mark.parametrize(("source", "attack"), INJECTIONS, ids=[a for _, a in INJECTIONS])
def test_injections_are_blocked_and_never_leak_the_environment(source, attack):
    # when the template is rendered
    outcome = attempt(source)

    # then the sandbox refused it, and nothing of the environment came out
    assert outcome.startswith(("UnsafeTemplate", "UndefinedVariable", "RenderError")), outcome
    assert SECRET not in outcome


@pytest.mark.parametrize(("source", "attack"), RESOURCE_ABUSE, ids=[a for _, a in RESOURCE_ABUSE])
def test_resource_abuse_is_stopped_quickly(source, attack):
    # when the template is rendered
    started = time.perf_counter()
    outcome = attempt(source)
    seconds = time.perf_counter() - started

    # then it failed as an expected outcome, well before harm (generous: a loaded machine is slow)
    assert outcome.startswith(("LimitExceeded", "RenderTimeout", "UndefinedVariable")), outcome[:200]
    assert seconds < 2, f"{attack} took {seconds:.1f} s"


@pytest.mark.parametrize("source", ["{{ config }}", "{{ request }}", "{{ settings.SECRET_KEY }}", "{{ environ }}"])
def test_framework_globals_do_not_exist(source):
    # when a name other template engines expose is printed at send time
    outcome = attempt(source)

    # then it is empty (and reported), never the environment
    assert SECRET not in outcome
    assert outcome.split("\n")[0] == ""


def test_framework_globals_are_errors_when_rendering_strictly():
    assert attempt("{{ config }}", RenderSettings(strict=True)).startswith("UndefinedVariable")


def test_validation_flags_private_attributes_before_anything_runs():
    template = Template(Content(sms=SmsContent("{{ cycler.__init__.__globals__ }}")))

    problems = validate(template)

    assert [(p.kind, p.line) for p in problems] == [("unsafe", 1), ("unsafe", 1)]


def test_the_time_budget_stops_a_slow_render():
    # given a 5 ms CPU budget and a template that spends far more within every other cap
    limits = dataclasses.replace(RenderLimits(), cpu_seconds=0.005, wall_seconds=10)
    slow = "{% for i in range(10000) %}{{ ('ab' * 5000) | upper | length }}{% endfor %}"

    # when rendered
    with pytest.raises(LimitExceeded, match="ms of CPU"):
        render(Template(Content(email=EmailContent(subject="s", html=slow))), RenderContext(contact=CONTACT),
               RenderSettings(limits=limits))


def test_a_wall_clock_deadline_backs_the_cpu_budget():
    limits = dataclasses.replace(RenderLimits(), wall_seconds=0.001)
    slow = "{% for i in range(10000) %}{{ ('ab' * 5000) | upper | length }}{% endfor %}"

    with pytest.raises(LimitExceeded, match="took over 1 ms"):
        render(Template(Content(email=EmailContent(subject="s", html=slow))), RenderContext(contact=CONTACT),
               RenderSettings(limits=limits))


def test_a_markup_name_is_escaped_in_html_and_plain_in_sms():
    # given a contact called <script>
    contact = {**CONTACT, "first_name": "<script>alert(1)</script>"}
    template = Template(Content(sms=SmsContent("Hi {{ contact.first_name }}"),
                                email=EmailContent(subject="s", html="<p>Hi {{ contact.first_name }}</p>")))

    # when rendered
    message = render(template, RenderContext(contact=contact))

    # then the HTML shows the text without running it, and the SMS shows it as written
    assert "<script>" not in message.email.html
    assert "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>" in message.email.html
    assert message.sms.text == "Hi <script>alert(1)</script>"


def test_a_value_marked_safe_is_still_the_contacts_own_text():
    # given a template that marks a contact field safe (the author's choice, allowed by Jinja)
    contact = {**CONTACT, "first_name": "<b>Ana</b>"}

    # when rendered, the HTML is the author's responsibility; the sandbox only stops code, not markup
    message = render(Template(Content(email=EmailContent(subject="s", html="{{ contact.first_name | safe }}"))),
                     RenderContext(contact=contact))

    assert "<b>Ana</b>" in message.email.html


def test_ordinary_templates_are_untouched_by_the_guards():
    # given the kind of logic real campaigns use
    source = ("{% set total = namespace(n=0) %}{% for p in contact.attributes.cart %}"
              "{% set total.n = total.n + p.price * p.qty %}{{ p.name | title }} x{{ p.qty }}; {% endfor %}"
              "{{ '%.2f' | format(total.n) }} {{ ('=' * 10) }} {{ 'Hi {}'.format(contact.first_name) }} "
              "{{ contact.first_name | center(9) }}|{{ range(3) | join(',') }}")
    contact = {**CONTACT, "attributes": {"cart": [{"name": "hat", "price": 10.5, "qty": 2},
                                                  {"name": "scarf", "price": 4, "qty": 1}]}}

    # when rendered
    text = render(Template(Content(sms=SmsContent(source))), RenderContext(contact=contact)).sms.text

    # then it works as in plain Jinja
    assert text == "Hat x2; Scarf x1; 25.00 ========== Hi Ana    Ana   |0,1,2"
