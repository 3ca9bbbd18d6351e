"""Template content for WhatsApp, voice, the in-app inbox and offline exports: stored, validated, rendered."""

from __future__ import annotations

import pytest

from clarion.content.context import RenderContext
from clarion.content.errors import InvalidTemplate, LimitExceeded, RenderError
from clarion.content.render import render, validate
from clarion.content.template_store import template_from_document, template_to_document

DOCUMENT = {"default_locale": "en", "default": {
    "whatsapp": {"template": "winback_offer", "language": "en_US",
                 "parameters": ["{{ contact.first_name }}", "{{ data.code | default('WELCOME') }}"],
                 "text": "Hi {{ contact.first_name }}, your code is {{ data.code | default('WELCOME') }}"},
    "voice": {"say": "Hello {{ contact.first_name }}, your order has shipped.", "voice": "Polly.Joanna"},
    "inapp": {"title": "For you, {{ contact.first_name }}", "body": "20% off", "url": "https://shop.example/sale"},
    "export": {"columns": {"salutation": "Dear {{ contact.first_name }}", "offer": "20% off"}}},
    "variants": {"pt-BR": {"voice": {"say": "Olá {{ contact.first_name }}, seu pedido foi enviado."}}}}
ANA = {"id": 1, "first_name": "Ana", "locale": "pt-BR"}


def test_a_document_with_every_new_channel_round_trips_and_validates():
    template = template_from_document(DOCUMENT)
    assert validate(template) == []
    assert template_from_document(template_to_document(template)) == template


def test_each_channel_renders_for_the_recipient_and_her_locale():
    # when the template is rendered for a Brazilian contact with a transactional payload
    message = render(template_from_document(DOCUMENT),
                     RenderContext(contact=ANA, campaign={"id": 1, "name": "x"}, data={"code": "ANA10"}))
    # then WhatsApp parameters are rendered in order, the call speaks the pt-BR variant, the rest follow
    assert message.whatsapp.parameters == ("Ana", "ANA10") and message.whatsapp.template == "winback_offer"
    assert message.voice.say == "Olá Ana, seu pedido foi enviado." and message.locale == "pt-BR"
    assert message.inapp.title == "For you, Ana"
    assert message.export.columns == {"salutation": "Dear Ana", "offer": "20% off"}


@pytest.mark.parametrize("channel, body, needle", [
    ("whatsapp", {"language": "en_US"}, "approved template name, free-form text, or both"),
    ("whatsapp", {"template": "x", "parameters": [1, 2]}, "parameters are texts"),
    ("export", {"columns": {}}, "map column names to texts"),
    ("export", {"columns": {"a": 5}}, "names and texts are strings"),
    ("voice", {"say": "x", "speed": 2}, "unknown field"),
])
def test_malformed_content_is_refused_when_saved(channel, body, needle):
    with pytest.raises(InvalidTemplate) as raised:
        template_from_document({"default": {channel: body}})
    assert needle in str(raised.value.problems)


def test_a_misspelt_field_in_a_whatsapp_parameter_is_reported_with_its_index():
    template = template_from_document({"default": {"whatsapp": {"template": "t", "parameters": [
        "ok", "{{ contact.frist_name }}"]}}})
    problems = validate(template)
    assert [(p.part, p.suggestion) for p in problems] == [("whatsapp.parameters[1]", "contact.first_name")]


def test_free_form_whatsapp_text_that_renders_empty_fails_for_that_recipient():
    template = template_from_document({"default": {"whatsapp": {"text": "{{ contact.nickname }}"}}})
    with pytest.raises(RenderError, match="renders empty"):
        render(template, RenderContext(contact={"id": 1}, campaign={"id": 1, "name": "x"}))


def test_a_spoken_text_over_twilios_limit_is_refused():
    template = template_from_document({"default": {"voice": {"say": "{{ 'a' * 3001 }}"}}})
    with pytest.raises(LimitExceeded, match="voice.say"):
        render(template, RenderContext(contact={"id": 1}, campaign={"id": 1, "name": "x"}))
