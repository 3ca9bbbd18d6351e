"""Building RFC 5322 messages: every header and part must read back through the standard library parser."""

from __future__ import annotations

import binascii
import dataclasses
import email
import email.policy
import re
from datetime import datetime, timedelta, timezone
from email.header import decode_header, make_header
from email.utils import parseaddr

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clarion.messages.email_message import EmailSpec, build_email, encode_text

SENT = datetime(2026, 3, 1, 15, 30, tzinfo=timezone(timedelta(hours=-3)))
SPEC = EmailSpec(
    from_name="Boutique Élodie", from_address="news@shop.example", to_address="ana@example.org", to_name="Ana Silva",
    subject="Ana, your spring picks", text="Hello Ana,\nour picks for you.\n", html="<p>Hello <b>Ana</b></p>\n",
    message_id="c7.d42.k3f9@shop.example", date=SENT, reply_to="help@shop.example",
    list_unsubscribe_url="https://u.shop.example/o/4f2a9c", list_unsubscribe_mailto="unsub+4f2a9c@shop.example",
    list_id="Spring sale <spring.c7.shop.example>", headers={"X-Clarion-Delivery": "d-42"},
)

TRICKY_TEXTS = {
    "mbox From lines": "From the team:\nFrom here on\n From indented\nFromage\n",
    "dots": ".\n..\n.hidden\nend.\n.",
    "long lines": "x" * 1000 + "\n" + "word " * 300 + "\n" + "=" * 200,
    "emoji": "Spring is here 🌸🎉 👩‍👩‍👧‍👦 family pack 🇵🇹\n" * 20,
    "CJK": "春のセールが始まりました。今だけ全品二十パーセントオフ！\n" * 30,
    "RTL": "مرحبا بكم في تخفيضات الربيع\nשלום וברוכים הבאים למבצע האביב\n" * 10,
    "whitespace": "trailing space \ntrailing tab\t\n\tleading tab\n  \n\n\n",
    "line breaks": "windows\r\nold mac\rUnix\n\r\nend",
    "no final newline": "Ünïcödé without a final line break",
    "controls": "null \x00 bell \x07 vertical \x0b feed \x0c escape \x1b",
}


def parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)


def canonical(text: str) -> bytes:
    """What a decoded text part must equal: the text with its line breaks as CRLF (RFC 2046 §4.1.1)."""
    return re.sub(r"\r\n|\r|\n", "\r\n", text).encode("utf-8")


def decoded_parts(message: email.message.EmailMessage) -> dict[str, bytes]:
    return {part.get_content_type(): part.get_payload(decode=True) for part in message.walk()
            if not part.is_multipart()}


def display_name(data: bytes, header: str = "From") -> str:
    """The display name decoded as RFC 2047 §6.2 says: the whitespace between two adjacent encoded-words
    is dropped. (The policy.default address parser of Python < 3.14 keeps it: CPython gh-128110.)"""
    name, _ = parseaddr(email.message_from_bytes(data, policy=email.policy.compat32)[header])
    return str(make_header(decode_header(name)))


def lines(data: bytes) -> list[bytes]:
    assert data.count(b"\n") == data.count(b"\r\n"), "every line break is CRLF"
    return data.split(b"\r\n")


def test_a_campaign_message_reads_back_header_by_header():
    # given a campaign message with every header filled in
    # when it is built and parsed by the standard library
    message = parse(build_email(SPEC))

    # then each header decodes to what was asked for, in a well-formed multipart/alternative
    assert message.defects == []
    assert message["From"].addresses[0].display_name == "Boutique Élodie"
    assert message["From"].addresses[0].addr_spec == "news@shop.example"
    assert message["To"].addresses[0].display_name == "Ana Silva"
    assert message["To"].addresses[0].addr_spec == "ana@example.org"
    assert message["Reply-To"].addresses[0].addr_spec == "help@shop.example"
    assert message["Subject"] == "Ana, your spring picks"
    assert message["Date"].datetime == SENT
    assert message["Message-ID"] == "<c7.d42.k3f9@shop.example>"
    assert message["MIME-Version"] == "1.0"
    assert message["List-Unsubscribe"] == "<https://u.shop.example/o/4f2a9c>, <mailto:unsub+4f2a9c@shop.example>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Spring sale <spring.c7.shop.example>"
    assert message["X-Clarion-Delivery"] == "d-42"
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]
    assert all(part.get_content_charset() == "utf-8" for part in message.iter_parts())


@pytest.mark.parametrize("text", TRICKY_TEXTS.values(), ids=TRICKY_TEXTS.keys())
def test_both_parts_decode_back_byte_exact(text):
    # given a text and an HTML body with awkward content
    spec = dataclasses.replace(SPEC, text=text, html=f"<pre>{text}</pre>")

    # when the message is built and parsed
    data = build_email(spec)
    parts = decoded_parts(parse(data))

    # then both decode back to the input (line breaks as CRLF), and the encoded lines are safe to transport
    assert parts == {"text/plain": canonical(text), "text/html": canonical(f"<pre>{text}</pre>")}
    assert data.isascii()
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in lines(body)) <= 76
    assert not any(line.startswith(b"From ") for line in lines(data)), "mbox delivery would rewrite these"
    assert b"." not in lines(body), "a lone dot line ends SMTP DATA on careless relays"


def test_latin_text_stays_quoted_printable_and_cjk_text_goes_base64():
    # given a mostly-ASCII text and a Japanese one
    latin, japanese = "Olá Ana, a nossa coleção de primavera chegou: veja as novidades!\n" * 30, TRICKY_TEXTS["CJK"]

    # when each is encoded
    # then quoted-printable is kept where it is compact, base64 where it is clearly smaller
    assert encode_text(latin)[0] == b"quoted-printable"
    encoding, encoded = encode_text(japanese)
    assert encoding == b"base64"
    assert len(encoded) <= 0.85 * len(binascii.b2a_qp(canonical(japanese), istext=True))


def test_non_ascii_headers_are_encoded_folded_and_read_back():
    # given display names and a subject in several scripts, long enough to need folding
    subject = "Olá Ana — 春のセール 🌸 " * 6 + "مرحبا"
    spec = dataclasses.replace(SPEC, from_name="Élodie & Søn, Ltd. 🛍", to_name="José \"Zé\" Nuñez", subject=subject)

    # when the message is built and parsed
    data = build_email(spec)
    message = parse(data)

    # then the header block is ASCII, no line passes 78 characters, and every value decodes back
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert max(len(line) for line in lines(head)) <= 78
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == "Élodie & Søn, Ltd. 🛍"
    assert message["To"].addresses[0].display_name == 'José "Zé" Nuñez'


def test_a_display_name_longer_than_one_encoded_word_reads_back_whole():
    # given a sender name of 90 UTF-8 bytes, more than one RFC 2047 encoded-word can hold
    name = "Ателье Élodie — весенняя коллекция"

    # when built
    data = build_email(dataclasses.replace(SPEC, from_name=name))

    # then it is split into several encoded-words on character boundaries, and joins back without a seam
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.split(b"\r\nTo:")[0].count(b"=?utf-8?b?") > 1
    assert max(len(line) for line in lines(head)) <= 78
    assert display_name(data) == name


def test_a_long_ascii_subject_folds_at_spaces_and_unfolds_to_the_original():
    # given a plain subject of 200 characters
    subject = " ".join(f"word{i}" for i in range(30))

    # when built
    data = build_email(dataclasses.replace(SPEC, subject=subject))

    # then it stays readable ASCII, folded under 78 columns, and reads back whole
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"=?utf-8?" not in head.split(b"Subject:", 1)[1].split(b"\r\nDate:", 1)[0]
    assert max(len(line) for line in lines(head)) <= 78
    assert parse(data)["Subject"] == subject


def test_ascii_that_looks_like_an_encoded_word_is_encoded_so_it_reads_back_literally():
    # given a subject and a display name containing "=?...?="
    spec = dataclasses.replace(SPEC, subject="=?utf-8?q?gotcha?= price", from_name="=?utf-8?q?x?=")

    # when built and parsed, then both read back literally
    message = parse(build_email(spec))
    assert message["Subject"] == "=?utf-8?q?gotcha?= price"
    assert message["From"].addresses[0].display_name == "=?utf-8?q?x?="


@pytest.mark.parametrize("field, header", [
    ("subject", "Subject"), ("from_name", "From"), ("to_name", "To"), ("from_address", "From"),
    ("to_address", "To"), ("reply_to", "Reply-To"), ("message_id", "Message-ID"),
    ("list_unsubscribe_url", "List-Unsubscribe"), ("list_unsubscribe_mailto", "List-Unsubscribe"),
    ("list_id", "List-Id"),
])
@pytest.mark.parametrize("line_break", ["\r\n", "\n", "\r"])
def test_a_line_break_in_any_header_value_is_refused_naming_the_header(field, header, line_break):
    # given a value smuggling a Bcc header through a line break
    spec = dataclasses.replace(SPEC, **{field: getattr(SPEC, field) + line_break + "Bcc: victim@example.org"})

    # when built, then it is refused, naming the header
    with pytest.raises(ValueError, match=f"^{header}:"):
        build_email(spec)


def test_a_line_break_in_an_extra_header_is_refused_too():
    # given an extra header whose value carries a line break
    spec = dataclasses.replace(SPEC, headers={"X-Campaign": "spring\r\nBcc: victim@example.org"})

    # when built, then it is refused, naming it
    with pytest.raises(ValueError, match="^X-Campaign:"):
        build_email(spec)


@pytest.mark.parametrize("headers", [{"Subject": "twice"}, {"bcc": "a@b.c"}, {"Bad Name": "x"}, {"X:Y": "x"}])
def test_extra_headers_cannot_duplicate_the_generated_ones_or_be_malformed(headers):
    # given an extra header that is reserved or not a field name; when built; then refused
    with pytest.raises(ValueError):
        build_email(dataclasses.replace(SPEC, headers=headers))


def test_one_click_post_goes_only_with_an_https_url():
    # given a message with only a mailto unsubscribe, and one with none at all
    mailto_only = parse(build_email(dataclasses.replace(SPEC, list_unsubscribe_url=None)))
    neither = parse(build_email(dataclasses.replace(SPEC, list_unsubscribe_url=None, list_unsubscribe_mailto=None)))

    # then RFC 8058's POST header appears with neither, and List-Unsubscribe only when there is a target
    assert mailto_only["List-Unsubscribe"] == "<mailto:unsub+4f2a9c@shop.example>"
    assert mailto_only["List-Unsubscribe-Post"] is None
    assert neither["List-Unsubscribe"] is None and neither["List-Unsubscribe-Post"] is None


@pytest.mark.parametrize("field, value", [
    ("list_unsubscribe_url", "http://u.shop.example/o/1"),  # RFC 8058 one-click must be https
    ("list_unsubscribe_url", "https://u.shop.example/<x>"),
    ("message_id", "<c7.d42@shop.example>"),
    ("message_id", "no-at-sign"),
    ("from_address", "not an address"),
    ("to_address", "josé@example.org"),  # a non-ASCII local part needs SMTPUTF8
    ("list_id", "Spring sale <not a dot atom>"),
    ("date", datetime(2026, 3, 1, 15, 30)),  # naive
])
def test_malformed_values_are_refused(field, value):
    with pytest.raises(ValueError):
        build_email(dataclasses.replace(SPEC, **{field: value}))


def test_an_internationalised_domain_is_written_in_idna():
    # given a recipient at a non-ASCII domain
    message = parse(build_email(dataclasses.replace(SPEC, to_address="ana@bücher.example")))

    # then the header carries its ASCII (IDNA) form
    assert message["To"].addresses[0].addr_spec == "ana@xn--bcher-kva.example"


def test_the_same_spec_builds_the_same_bytes_and_boundaries_differ_between_messages():
    # given two builds of one spec and a build of another message
    first, again = build_email(SPEC), build_email(SPEC)
    other = build_email(dataclasses.replace(SPEC, message_id="c7.d43.k3f9@shop.example"))

    # then rebuilding is reproducible, and each message has its own boundary
    assert first == again
    assert parse(first).get_boundary() != parse(other).get_boundary()
    assert parse(first).get_boundary().startswith("=_")


def test_without_html_the_message_is_a_single_text_part():
    # given a text-only spec
    message = parse(build_email(dataclasses.replace(SPEC, html="")))

    # then there is no multipart wrapper
    assert message.get_content_type() == "text/plain"
    assert message.get_payload(decode=True) == canonical(SPEC.text)


header_text = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=300, deadline=None)
@given(subject=header_text, name=header_text, text=st.text(max_size=2000), html=st.text(max_size=2000))
def test_arbitrary_subject_name_and_bodies_round_trip_through_the_stdlib_parser(subject, name, text, html):
    # given arbitrary Unicode (but for the line breaks a header cannot hold)
    spec = dataclasses.replace(SPEC, subject=subject, from_name=name, text=text, html=html)

    # when the message is built and parsed back
    data = build_email(spec)
    message = parse(data)

    # then the subject, the display name and every part decode back, and lines stay within limits
    assert message["Subject"] == subject
    assert display_name(data) == name
    expected = {kind: canonical(body) for kind, body in (("text/plain", text), ("text/html", html)) if body}
    assert decoded_parts(message) == (expected or {"text/plain": b""})
    head, body = data.split(b"\r\n\r\n", 1)
    assert max(len(line) for line in lines(head)) <= 998
    assert max(len(line) for line in lines(body)) <= 76
    assert not any(line.startswith(b"From ") for line in lines(body))


awkward_text = st.lists(st.sampled_from(["From ", "From", " ", "\t", "\n", "\r\n", ".", "=", "x", "word ", "é", "🌸",
                                         "x" * 70]), max_size=80).map("".join)


@settings(max_examples=500, deadline=None)
@given(text=awkward_text)
def test_quoted_printable_stays_within_76_columns_and_never_starts_a_line_with_from(text):
    # given text built from the pieces that trouble quoted-printable: "From ", dots, "=", trailing whitespace
    # when encoded
    encoding, encoded = encode_text(text)

    # then every line is at most 76 characters, none starts with "From ", and it decodes back exactly
    assert max(len(line) for line in lines(encoded)) <= 76
    assert not any(line.startswith(b"From ") for line in lines(encoded))
    decoded = binascii.a2b_qp(encoded) if encoding == b"quoted-printable" else binascii.a2b_base64(encoded)
    assert decoded == canonical(text)
