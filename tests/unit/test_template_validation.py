"""Checking templates when they are saved, and compiling MJML with its Jinja tags intact."""

from __future__ import annotations

import pytest

from clarion.content.html import text_template
from clarion.content.render import (
    Content,
    EmailContent,
    InvalidTemplate,
    PushContent,
    RenderContext,
    SmsContent,
    Template,
    WebhookContent,
    compile_mjml,
    inline_css,
    render,
    validate,
)

MJML = """<mjml>
  <mj-head><mj-title>{{ campaign.name }}</mj-title>
    <mj-style>.price { color: #c00; }</mj-style></mj-head>
  <mj-body>
    <mj-section><mj-column>
      <mj-text>Hello {{ contact.first_name | default("there") }}{% if contact.attributes.vip %}, VIP{% endif %}!
      </mj-text>
      {% for item in contact.attributes.cart %}
      <mj-text css-class="price">{{ item.name }}: {{ item.price | money("EUR") }}
        {% if item.price > 10 %}(big){% endif %}</mj-text>
      {% endfor %}
      <mj-button href="{{ links.unsubscribe }}">Unsubscribe</mj-button>
    </mj-column></mj-section>
  </mj-body>
</mjml>"""
ANA = {"first_name": "Ana", "locale": "en-IE",
       "attributes": {"vip": True, "cart": [{"name": "Hat", "price": 12}, {"name": "Pin", "price": 2}]}}


def sms(text: str) -> Template:
    return Template(Content(sms=SmsContent(text)))


def problems_of(template: Template) -> list[tuple[str, str, int | None, str | None]]:
    return [(p.part, p.kind, p.line, p.suggestion) for p in validate(template)]


def test_a_correct_template_has_no_problems():
    template = Template(Content(
        email=EmailContent(subject="{{ contact.first_name }}", html=compile_mjml(MJML)),
        sms=SmsContent("{{ contact.attributes.anything.deep }} {{ contact.custom_dates.renewal | date }} "
                       "{{ links.preferences }} {{ campaign.id }} {% for i in range(3) %}{{ loop.index }}{% endfor %}"),
        push=PushContent(title="{{ now | time }}", body="{{ contact.get('city', 'there') }}"),
    ))

    assert validate(template) == []


def test_syntax_errors_name_the_part_and_line():
    # given a template whose HTML leaves the tag of line 3 unclosed
    template = Template(Content(email=EmailContent(subject="ok", html="<p>\n{{ contact.first_name }}\n{% if x %}\n")))

    # when validated
    [problem] = validate(template)

    # then the problem says where, in words
    assert (problem.part, problem.kind, problem.line) == ("email.html", "syntax", 3)
    assert "endif" in problem.message


def test_misspelt_contact_fields_get_a_suggestion():
    template = sms("Hi {{ contact.first_nam }}, {{ contact['emial'] }}\n{{ contact.attributes.whatever }}")

    assert problems_of(template) == [
        ("sms.text", "unknown_variable", 1, "contact.first_name"),
        ("sms.text", "unknown_variable", 1, "contact.email"),
    ]


def test_unknown_top_level_names_get_a_suggestion():
    template = sms("{{ first_name }} {{ contat.city }} {{ unsubscribe }} {{ totally_unknown }}")

    assert {p.message: p.suggestion for p in validate(template)} == {
        "unknown variable 'contat'": "contact",
        "unknown variable 'first_name'": "contact.first_name",
        "unknown variable 'totally_unknown'": None,
        "unknown variable 'unsubscribe'": "links.unsubscribe",
    }


def test_links_and_campaign_fields_are_checked_too():
    template = sms("{{ links.unsubcribe }} {{ campaign.nme }}")

    assert problems_of(template) == [
        ("sms.text", "unknown_variable", 1, "links.unsubscribe"),
        ("sms.text", "unknown_variable", 1, "campaign.name"),
    ]


def test_known_fields_and_links_can_be_extended():
    template = sms("{{ contact.loyalty_id }} {{ links.survey }}")

    assert validate(template, known_fields=("loyalty_id",), known_links=("survey",)) == []


def test_variants_are_validated_with_their_locale():
    template = Template(Content(sms=SmsContent("Hello")), variants={"fr": Content(sms=SmsContent("Bonjour {{ oops"))})

    [problem] = validate(template)

    assert (problem.part, problem.locale, problem.kind) == ("sms.text", "fr", "syntax")


def test_unknown_filters_and_includes_are_problems():
    template = Template(Content(sms=SmsContent("{{ contact.first_name | shout }}"),
                                push=PushContent(title="{% include 'header.txt' %}", body="x")))

    assert problems_of(template) == [("sms.text", "syntax", 1, None), ("push.title", "unsupported", 1, None)]


def test_fixed_text_over_the_cap_can_never_be_sent():
    [problem] = validate(sms("x" * 1601))

    assert (problem.kind, problem.part) == ("size", "sms.text")
    assert "1,601 chars" in problem.message


def test_webhook_strings_are_checked_with_their_path():
    template = Template(Content(webhook=WebhookContent({"order": {"id": "{{ contact.idd }}"}, "items": ["{{ x"]})))

    assert [(p.part, p.kind) for p in validate(template)] == [
        ("webhook.body.order.id", "unknown_variable"), ("webhook.body.items[0]", "syntax")]


def test_mjml_compiles_to_inlined_html_with_the_jinja_tags_intact():
    # when the MJML is compiled
    html = compile_mjml(MJML)

    # then it is HTML with the style inlined, and every tag as written, in its place
    assert html.startswith("<!doctype html>") or html.lower().startswith("<!doctype html>")
    assert "color: #c00" in html or "color:#c00" in html
    for tag in ('{{ contact.first_name | default("there") }}', "{% for item in contact.attributes.cart %}",
                '{{ item.price | money("EUR") }}', "{% if item.price > 10 %}", "{{ links.unsubscribe }}"):
        assert tag in html
    assert html.index("{% for item") < html.index("{{ item.name }}") < html.index("{% endfor %}")


def test_an_mjml_template_renders_per_recipient():
    # given a template built from MJML
    template = Template(Content(email=EmailContent.from_mjml("Hi {{ contact.first_name }}", MJML)))

    # when rendered for Ana
    email = render(template, RenderContext(contact=ANA, links={"unsubscribe": "https://u.example.com/1"})).email

    # then the loop repeated its rows in the HTML (as a browser shows its white space) and in the derived text
    shown = " ".join(email.html.split())
    assert "Hat: €12.00 (big)" in shown and "Pin: €2.00" in shown
    assert "Hello Ana, VIP!" in email.text
    assert email.text.index("Hat: €12.00 (big)") < email.text.index("Pin: €2.00")
    assert "https://u.example.com/1" in email.text


def test_mjml_that_cannot_be_parsed_is_a_problem():
    with pytest.raises(InvalidTemplate) as error:
        EmailContent.from_mjml("s", "<mjml><mj-body><mj-section><mj-column><mj-text>a</mj-column>")

    [problem] = error.value.problems
    assert (problem.part, problem.kind) == ("email.html", "mjml")
    assert "cannot be parsed" in problem.message


def test_a_jinja_tag_mjml_cannot_keep_is_a_problem_with_its_line():
    # given a block tag inside <mj-title>, where MJML keeps text only
    source = "<mjml>\n<mj-head><mj-title>{% if x %}A{% endif %}</mj-title></mj-head>\n<mj-body></mj-body></mjml>"

    # when compiled: MJML puts the title in two places, so the block tags come out twice
    with pytest.raises(InvalidTemplate) as error:
        compile_mjml(source)

    # then each is reported on the line it was written
    assert {(p.kind, p.line) for p in error.value.problems} == {("mjml", 2)}


def test_css_is_inlined_without_touching_jinja_tags_or_fetching_stylesheets():
    # given HTML with a remote stylesheet, a style block, and a loop over table rows
    html = ('<html><head><link rel="stylesheet" href="https://cdn.example.com/x.css">'
            "<style>p { color: red }</style></head><body><table>{% for row in rows %}"
            "<tr><td><p>{{ row.a < row.b }}</p></td></tr>{% endfor %}</table></body></html>")

    # when its CSS is inlined (offline: the link is kept, not fetched)
    inlined = inline_css(html)

    # then the rule is on the element, the expression is unescaped, and the loop still wraps the row
    assert '<p style="color: red;">{{ row.a < row.b }}</p>' in inlined
    assert inlined.index("{% for row in rows %}") < inlined.index("<tr>") < inlined.index("{% endfor %}")
    assert 'href="https://cdn.example.com/x.css"' in inlined


def test_a_comparison_in_an_earlier_tag_does_not_confuse_where_tags_stand():
    # given a "<" inside a Jinja tag before a loop over table rows
    html = ("<p>{% if a < b %}x{% endif %}</p>"
            "<table><tr><td>h</td></tr>{% for r in rows %}<tr><td>{{ r }}</td></tr>{% endfor %}</table>")

    # then the loop still wraps its row after inlining, and in the derived text
    inlined = inline_css(html)
    assert inlined.index("{% for r in rows %}") < inlined.index("{{ r }}") < inlined.index("{% endfor %}")
    assert text_template(html).endswith("{% for r in rows %}\n{{ r }}\n{% endfor %}")


def test_a_text_template_is_none_when_the_html_tags_cannot_be_followed():
    # given HTML whose block tags sit inside an attribute, which text conversion drops
    html = '<p class="{% if vip %}gold{% endif %}">Hello</p>'

    # then no text template can be derived (the text is converted per message instead)
    assert text_template(html) is None
    message = render(Template(Content(email=EmailContent(subject="s", html=html))), RenderContext(contact=ANA))
    assert message.email.text == "Hello"
