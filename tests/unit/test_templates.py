"""Rendering message templates for one recipient: personalisation, locales, formatting, caps, text parts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clarion.content.limits import PART_CAPS
from clarion.content.model import locale_fallbacks
from clarion.content.render import (
    Content,
    EmailContent,
    InvalidTemplate,
    LimitExceeded,
    PushContent,
    RenderContext,
    RenderError,
    RenderLimits,
    RenderSettings,
    SmsContent,
    Template,
    UndefinedVariable,
    WebhookContent,
    WebPushContent,
    is_literal,
    render,
)
from clarion.content.sandbox import CompiledTemplates, sandbox

NOW = datetime(2026, 3, 1, 15, 30, tzinfo=UTC)
ANA = {
    "id": 42, "first_name": "Ana", "last_name": "Silva", "email": "ana@example.com", "locale": "pt-BR",
    "timezone": "America/Sao_Paulo", "country": "BR", "city": "Recife", "birthday": date(1990, 2, 28),
    "attributes": {"tier": "gold", "credit": 1234.5, "items": ["shoes", "hat"]},
    "custom_dates": {"renewal": "2026-04-01"},
}


def context(contact: dict | None = None, **overrides) -> RenderContext:
    return RenderContext(contact=ANA if contact is None else contact, campaign={"id": 7, "name": "Spring"},
                         links={"unsubscribe": "https://u.example.com/42"}, now=NOW, **overrides)


def sms(text: str, **variants: str) -> Template:
    return Template(Content(sms=SmsContent(text)),
                    variants={tag.replace("_", "-"): Content(sms=SmsContent(v)) for tag, v in variants.items()})


def email(**parts: str) -> Template:
    return Template(Content(email=EmailContent(**parts)))


def render_sms(text: str, contact: dict | None = None, **settings) -> str:
    return render(sms(text), context(contact), RenderSettings(**settings)).sms.text


def test_an_email_is_personalised_in_every_part():
    # given an email template using the contact, the campaign and the links
    template = email(
        subject="{{ contact.first_name }}, {{ campaign.name }} is here",
        preheader="For {{ contact.city }}",
        html='<html><body><p>Hi {{ contact.first_name }}</p><a href="{{ links.unsubscribe }}">Bye</a></body></html>',
    )

    # when it is rendered for Ana
    message = render(template, context())

    # then every part carries her data, and the preheader opens the body as hidden text
    assert message.email.subject == "Ana, Spring is here"
    assert message.email.preheader == "For Recife"
    assert "<p>Hi Ana</p>" in message.email.html
    assert 'href="https://u.example.com/42"' in message.email.html
    assert message.email.html.index("For Recife") < message.email.html.index("Hi Ana")
    assert message.undefined == ()


def test_the_text_part_is_derived_from_the_html_once_and_keeps_loops_and_links():
    # given an HTML email whose loop repeats table rows, and no text part
    html = ("<html><body><table><tr><td>Hello {{ contact.first_name }}</td></tr>"
            "{% for item in contact.attributes['items'] %}<tr><td>* {{ item }}</td></tr>{% endfor %}"
            '</table><p><a href="{{ links.unsubscribe }}">Unsubscribe</a></p></body></html>')
    template = Template(Content(email=EmailContent(subject="s", html=html)))

    # when it is rendered
    text = render(template, context()).email.text

    # then the text has the greeting, one line per item in order, and the link's address
    assert text.splitlines()[0] == "Hello Ana"
    assert [line for line in text.splitlines() if line.startswith("*")] == ["* shoes", "* hat"]
    assert "https://u.example.com/42" in text


def test_an_explicit_text_part_is_used_as_written():
    template = email(subject="s", html="<p>HTML</p>", text="Plain {{ contact.first_name }}")

    assert render(template, context()).email.text == "Plain Ana"


def test_html_is_escaped_but_text_parts_are_not():
    # given a contact whose name is markup
    contact = {**ANA, "first_name": "<b>Ana</b> & co"}
    template = Template(Content(
        email=EmailContent(subject="{{ contact.first_name }}", html="<body><p>{{ contact.first_name }}</p></body>",
                           preheader="{{ contact.first_name }}"),
        sms=SmsContent("{{ contact.first_name }}"),
    ))

    # when rendered
    message = render(template, context(contact))

    # then the HTML escapes it, preheader included; the subject, SMS and derived text print it as written
    assert "<p>&lt;b&gt;Ana&lt;/b&gt; &amp; co</p>" in message.email.html
    assert 'aria-hidden="true">&lt;b&gt;Ana&lt;/b&gt; &amp; co</div>' in message.email.html
    assert message.email.subject == message.email.preheader == message.sms.text == "<b>Ana</b> & co"
    assert message.email.text == "<b>Ana</b> & co"


def test_money_numbers_and_percentages_follow_the_recipients_locale():
    template = "{{ 1234.5 | money('EUR') }} | {{ 1234567.891 | number }} | {{ 0.256 | percent }} | {{ 3 | number(2) }}"

    assert render_sms(template, {**ANA, "locale": "pt-BR"}) == "€\xa01.234,50 | 1.234.567,891 | 26% | 3,00"
    assert render_sms(template, {**ANA, "locale": "en-US"}) == "€1,234.50 | 1,234,567.891 | 26% | 3.00"
    assert render_sms(template, {**ANA, "locale": "fr"}) == (
        "1\u202f234,50\xa0€ | 1\u202f234\u202f567,891 | 26\xa0% | 3,00")


def test_money_takes_decimal_strings_exactly_and_refuses_unknown_currencies():
    assert render_sms("{{ '19.99' | money('usd') }}", {**ANA, "locale": "en-US"}) == "$19.99"
    with pytest.raises(RenderError, match="unknown currency 'EURO'"):
        render_sms("{{ 1 | money('EURO') }}")


def test_dates_and_times_are_shown_on_the_recipients_clock():
    # given "now" at 15:30 UTC, which is 12:30 in São Paulo and 00:30 the next day in Tokyo
    template = "{{ now | datetime('short') }} / {{ now | date('long') }} / {{ now | time }}"

    # when rendered for a contact in each zone
    in_sao_paulo = render_sms(template, {**ANA, "locale": "pt-BR", "timezone": "America/Sao_Paulo"})
    in_tokyo = render_sms(template, {**ANA, "locale": "en-GB", "timezone": "Asia/Tokyo"})

    # then each sees their own wall clock and calendar
    assert in_sao_paulo == "01/03/2026 12:30 / 1 de março de 2026 / 12:30"
    assert in_tokyo == "02/03/2026, 00:30 / 2 March 2026 / 00:30"


def test_stored_dates_and_custom_dates_format_as_dates():
    text = render_sms("{{ contact.birthday | date('d MMMM') }} {{ contact.custom_dates.renewal | date('short') }}")

    assert text == "28 fevereiro 01/04/2026"


def test_an_invalid_locale_or_zone_falls_back_to_the_defaults():
    # given a contact with a malformed locale and an unknown zone
    contact = {**ANA, "locale": "not a locale!", "timezone": "Mars/Olympus"}

    # when rendered with Paris as the default zone
    message = render(sms("{{ 1234.5 | number }} {{ now | time }}"), context(contact),
                     RenderSettings(default_timezone="Europe/Paris"))

    # then the template's default locale and the default zone are used
    assert (message.format_locale, message.timezone) == ("en", "Europe/Paris")
    assert message.sms.text == "1,234.5 4:30\u202fPM"


def test_the_most_specific_locale_variant_wins():
    template = sms("Hello", pt="Olá", pt_BR="Oi", fr="Bonjour")

    assert render(template, context({**ANA, "locale": "pt-BR"})).sms.text == "Oi"
    assert render(template, context({**ANA, "locale": "pt-PT"})).sms.text == "Olá"
    assert render(template, context({**ANA, "locale": "fr-CA"})).sms.text == "Bonjour"
    message = render(template, context({**ANA, "locale": "de"}))
    assert (message.sms.text, message.locale) == ("Hello", "en")


def test_a_variant_inherits_the_channels_it_does_not_translate():
    # given a default with email and SMS, and a Portuguese variant with only the SMS
    template = Template(Content(email=EmailContent(subject="Hello", html="<p>Hello</p>"), sms=SmsContent("Hello")),
                        variants={"pt": Content(sms=SmsContent("Olá"))})

    # when rendered for a Brazilian contact
    message = render(template, context())

    # then the SMS is translated and the email comes from the default content
    assert (message.locale, message.sms.text, message.email.subject) == ("pt", "Olá", "Hello")


def test_locale_fallbacks_go_from_specific_to_general():
    assert locale_fallbacks("zh_hant_tw") == ("zh-Hant-TW", "zh-Hant", "zh")
    assert locale_fallbacks("pt-BR") == ("pt-BR", "pt")
    assert locale_fallbacks(None) == locale_fallbacks("bad tag!") == ()


def test_a_variant_with_a_malformed_locale_is_refused():
    with pytest.raises(InvalidTemplate, match="not a language tag"):
        sms("Hello", **{"not a tag": "x"})


def test_unknown_variables_render_empty_and_are_reported_at_send_time():
    # given a template using a missing attribute, a missing profile field and an unknown name
    contact = {**ANA, "last_name": None}

    # when rendered
    message = render(sms("Hi {{ contact.attributes.nickname }}{{ contact.last_name }}{{ coupon }}!"), context(contact))

    # then they print nothing and are listed, in order, with their full path
    assert message.sms.text == "Hi !"
    assert message.undefined == ("contact.attributes.nickname", "contact.last_name", "coupon")


def test_defaults_and_tests_on_missing_values_are_not_reported():
    text = "{{ contact.attributes.nickname | default('friend') }}{% if contact.attributes.vip %}VIP{% endif %}"

    message = render(sms(text), context())

    assert (message.sms.text, message.undefined) == ("friend", ())


def test_strict_rendering_makes_unknown_variables_an_error():
    with pytest.raises(UndefinedVariable) as error:
        render(sms("Hi {{ contact.attributes.nickname }}"), context(), RenderSettings(strict=True))

    assert (error.value.part, error.value.name) == ("sms.text", "contact.attributes.nickname")


def test_arithmetic_on_a_missing_value_fails_the_message_naming_it():
    with pytest.raises(UndefinedVariable, match="contact.attributes.points"):
        render(sms("{{ contact.attributes.points + 10 }}"), context())


def test_custom_attributes_named_like_mapping_methods_are_data():
    assert render_sms("{{ contact.attributes.items | join(', ') }}") == "shoes, hat"


@pytest.mark.parametrize(("part", "template", "cap"), [
    ("email.subject", email(subject="{{ 'x' * 999 }}", html="<p>h</p>"), 998),
    ("sms.text", sms("{% for i in range(161) %}0123456789{% endfor %}"), 1_600),
    # 300,000 characters, but 600,000 bytes: the HTML cap counts bytes
    ("email.html", email(subject="s", html="{% for i in range(600) %}{{ 'é' * 500 }}{% endfor %}"), 512 * 1024),
])
def test_parts_over_their_cap_are_refused_with_the_reason(part, template, cap):
    with pytest.raises(LimitExceeded) as error:
        render(template, context())

    assert error.value.part == part
    assert f"{cap:,}" in error.value.reason


def test_a_push_notification_is_capped_in_bytes_over_all_its_texts():
    # given a title and body that fit alone but together pass 4,096 bytes of UTF-8 (ç is two bytes)
    push = PushContent(title="{{ 'ç' * 1000 }}", body="{{ 'ç' * 1100 }}", deep_link="app://offers/{{ contact.id }}")

    # when rendered
    with pytest.raises(LimitExceeded) as error:
        render(Template(Content(push=push)), context())

    # then the whole channel is refused, citing FCM's payload limit
    assert error.value.part == "push"
    assert PART_CAPS["push"].source in error.value.reason


def test_push_and_web_push_render_their_templates_and_keep_plain_values():
    template = Template(Content(
        push=PushContent(title="Hi {{ contact.first_name }}", body="Your {{ contact.attributes.tier }} perks",
                         deep_link="app://c/{{ contact.id }}", badge=3, sound="default"),
        webpush=WebPushContent(title="Hi", body="{{ campaign.name }}", url="https://x.example.com/?c={{ contact.id }}"),
    ))

    message = render(template, context())

    assert message.push == PushContent("Hi Ana", "Your gold perks", None, "app://c/42", 3, "default")
    assert message.webpush == WebPushContent("Hi", "Spring", None, "https://x.example.com/?c=42")


def test_a_webhook_body_renders_its_string_values_into_a_dict():
    # given a JSON document whose strings are templates, with other JSON values left as they are
    body = ('{"user": {"email": "{{ contact.email }}", "tier": "{{ contact.attributes.tier }}"},'
            ' "n": 3, "tags": ["{{ campaign.name }}", true]}')

    # when rendered
    rendered = render(Template(Content(webhook=WebhookContent(body))), context()).webhook

    # then it is a dict with the values filled in (no HTML escaping, no JSON re-quoting)
    assert rendered == {"user": {"email": "ana@example.com", "tier": "gold"}, "n": 3, "tags": ["Spring", True]}


def test_a_webhook_body_that_is_not_json_is_refused():
    with pytest.raises(InvalidTemplate) as error:
        WebhookContent('{"a": ')

    assert error.value.problems[0].part == "webhook.body"


def test_only_the_channels_asked_for_are_rendered():
    template = Template(Content(email=EmailContent(subject="{{ broken + 1 }}", html="x"), sms=SmsContent("ok")))

    message = render(template, context(), channels=("sms",))

    assert (message.sms.text, message.email) == ("ok", None)


def test_a_template_is_compiled_once_for_many_recipients():
    # given an empty cache and one template
    cache = CompiledTemplates()
    template = email(subject="Hi {{ contact.first_name }}", html="<p>{{ contact.city }}</p>", text="{{ contact.city }}")

    # when it is rendered for 200 recipients
    for n in range(200):
        render(template, context({**ANA, "first_name": f"Ana {n}"}), cache=cache)

    # then each of its texts was compiled once: subject, HTML and text (an empty preheader never is)
    assert cache.compiles == 3
    assert cache.hits == 3 * 199


def test_the_cache_evicts_the_least_recently_used_template():
    cache = CompiledTemplates(maxsize=2)
    for source in ("a", "b", "a", "c", "a"):
        cache.get(source, autoescape=False)

    assert (cache.compiles, cache.hits) == (3, 2)


def test_syntax_errors_met_at_send_time_fail_the_message_with_the_line():
    with pytest.raises(RenderError, match=r"sms.text: line 2: .*end of print statement"):
        render(sms("ok\n{{ contact.first_name"), context())


def test_limits_are_configurable():
    limits = dataclasses.replace(RenderLimits(), max_range=5)

    with pytest.raises(LimitExceeded, match="range"):
        render(sms("{% for i in range(6) %}{% endfor %}"), context(), RenderSettings(limits=limits))


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200))
def test_text_taken_as_literal_renders_exactly_as_jinja_would(text):
    # given any text the renderer passes through without Jinja (no braces, no CR, no trailing newline)
    if not is_literal(text):
        return
    # then Jinja itself, escaping or not, would have produced the same text
    for autoescape in (False, True):
        assert sandbox(autoescape).from_string(text).render() == text
