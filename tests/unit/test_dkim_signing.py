"""DKIM signing: what DkimSigner writes must be what dkimpy writes, and must verify with ``dkim.verify``."""

from __future__ import annotations

import base64
import dataclasses
import re
import types
from datetime import UTC, datetime

import dkim
import pytest
import time_machine
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dkim.canonicalization import Relaxed
from hypothesis import given, settings
from hypothesis import strategies as st

from clarion.messages.dkim_signing import DkimSigner, parse_message, relaxed_body, relaxed_header
from clarion.messages.email_message import EmailSpec, build_email

SIGNED_AT = 1_772_380_800  # 2026-03-01 16:00:00 UTC, in seconds
SPEC = EmailSpec(
    from_name="Boutique Élodie", from_address="news@shop.example", to_address="ana@example.org", to_name="Ana",
    subject="Olá Ana — spring picks 🌸", text="Hello Ana,\n  our   picks\tfor you.  \n",
    html="<p>Hello   <b>Ana</b></p>\n\n\n", message_id="c7.d42.k3f9@shop.example",
    date=datetime(2026, 3, 1, 15, 30, tzinfo=UTC), list_unsubscribe_url="https://u.shop.example/o/4f2a9c",
    list_unsubscribe_mailto="unsub+4f2a9c@shop.example", list_id="Spring sale <spring.c7.shop.example>",
    headers={"X-Clarion-Delivery": "d-42"},
)
REQUIRED = {"from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post", "list-id",
            "mime-version", "content-type"}


def pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ed25519_pem() -> bytes:
    return pem(ed25519.Ed25519PrivateKey.generate())


@pytest.fixture(scope="module")
def rsa_pem() -> bytes:
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="module")
def signer(rsa_pem) -> DkimSigner:
    return DkimSigner("shop.example", "s2026", rsa_pem, clock=lambda: SIGNED_AT)


def dns_for(signer: DkimSigner):
    """dkimpy's DNS lookup answered from the signer's own record, for its selector only."""
    name = f"{signer.selector.decode()}._domainkey.{signer.domain.decode()}."
    record = signer.dns_record().encode("ascii")

    def lookup(qname, timeout=5):
        return record if qname.decode() == name else None
    return lookup


def verify(message: bytes, signer: DkimSigner) -> bool:
    return dkim.verify(message, dnsfunc=dns_for(signer))


def signature_tags(message: bytes) -> dict[bytes, bytes]:
    headers, _ = dkim.rfc822_parse(message)
    value = next(v for name, v in headers if name.lower() == b"dkim-signature")
    return dkim.util.parse_tag_value(value)


def test_a_signed_campaign_message_verifies_and_signs_what_it_must(signer):
    # given a built campaign message
    message = build_email(SPEC)

    # when it is signed
    signed = signer.sign(message)

    # then dkimpy verifies it, with relaxed/relaxed rsa-sha256 over the identity and unsubscribe headers
    assert signed.endswith(message)
    assert verify(signed, signer)
    tags = signature_tags(signed)
    assert tags[b"a"] == b"rsa-sha256"
    assert tags[b"c"] == b"relaxed/relaxed"
    assert (tags[b"d"], tags[b"s"], tags[b"t"]) == (b"shop.example", b"s2026", str(SIGNED_AT).encode())
    signed_names = {name.strip().decode() for name in re.sub(rb"\s+", b"", tags[b"h"]).split(b":")}
    assert REQUIRED <= signed_names


def test_the_signature_header_is_byte_for_byte_the_one_dkimpy_writes(signer, rsa_pem):
    # given a message, and the h= list the signer chooses for it
    message = build_email(SPEC)
    include = list(signer.signed_names(name for name, _ in dkim.rfc822_parse(message)[0]))

    # when dkimpy signs it itself (pure-Python RSA) in the same second
    with time_machine.travel(SIGNED_AT, tick=False):
        reference = dkim.sign(message, b"s2026", b"shop.example", rsa_pem, canonicalize=(b"relaxed", b"relaxed"),
                              include_headers=include)

    # then both signatures are identical (RSASSA-PKCS1-v1_5 is deterministic)
    assert signer.sign(message) == reference + message


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda m: m.replace(b"https://u.shop.example/o/4f2a9c", b"https://evil.example/o/4f2a9c"),
                 id="List-Unsubscribe URL changed"),
    pytest.param(lambda m: m.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", b""),
                 id="List-Unsubscribe-Post removed"),
    pytest.param(lambda m: m.replace(b"\r\nList-Unsubscribe:", b"\r\nList-Unsubscribe: <https://evil.example/x>"
                                     b"\r\nList-Unsubscribe:", 1), id="second List-Unsubscribe added"),
    pytest.param(lambda m: m.replace(b"List-Id: Spring sale", b"List-Id: Autumn sale"), id="List-Id changed"),
    pytest.param(lambda m: m.replace(b"Hello Ana", b"Hello Bob", 1), id="body changed"),
    pytest.param(lambda m: m.replace(b"\r\nTo: ", b"\r\nTo: eve@example.org, "), id="recipient added"),
])
def test_tampering_with_a_signed_header_or_the_body_breaks_verification(signer, tamper):
    # given a signed message
    signed = signer.sign(build_email(SPEC))
    assert verify(signed, signer)

    # when it is changed on the way
    tampered = tamper(signed)

    # then it no longer verifies
    assert tampered != signed
    assert not verify(tampered, signer)


def test_relaxed_canonicalisation_tolerates_refolding_and_trailing_whitespace(signer):
    # given a signed message
    signed = signer.sign(build_email(SPEC))

    # when a relay refolds the Subject and adds whitespace at the end of body lines
    head, body = signed.split(b"\r\n\r\n", 1)
    head = re.sub(rb"(Subject:[^\r]*)\r\n ", rb"\1\r\n\t  ", head)
    relayed = head + b"\r\n\r\n" + body.replace(b"\r\n", b"  \r\n")

    # then it still verifies
    assert relayed != signed
    assert verify(relayed, signer)


def test_a_message_with_bare_lf_line_endings_is_signed_as_dkimpy_parses_it(signer):
    # given a message written with LF line endings
    message = build_email(SPEC).replace(b"\r\n", b"\n")

    # when signed, then it verifies (the SMTP client sends it with CRLF, which canonicalises the same)
    assert verify(signer.sign(message), signer)
    assert verify(signer.sign(message).replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"), signer)


def test_every_signed_header_is_oversigned_so_none_can_be_added(signer):
    # given a message with one From and no Cc
    message = build_email(SPEC)

    # when the h= list is chosen
    names = signer.signed_names(name for name, _ in dkim.rfc822_parse(message)[0])

    # then each present header is listed once more than it occurs, and absent ones once
    assert names.count(b"from") == 2
    assert names.count(b"list-unsubscribe") == 2
    assert names.count(b"cc") == 1
    assert DkimSigner("shop.example", "s", ed25519_pem(), oversign=False).signed_names([b"From"]) == (b"from",)


@pytest.fixture
def ed25519_verification(monkeypatch):
    """dkimpy verifies ed25519 with PyNaCl; when it is not installed, the same calls answered by
    ``cryptography`` (only the raw Ed25519 check: parsing, canonicalisation and hashing stay dkimpy's)."""
    try:
        import nacl.signing  # noqa: F401
        return
    except ImportError:
        pass

    class BadSignatureError(Exception):
        pass

    class VerifyKey:
        def __init__(self, key: bytes, encoder=None) -> None:
            self._key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(key))

        def verify(self, message: bytes, signature: bytes) -> bytes:
            try:
                self._key.verify(signature, message)
            except InvalidSignature as exc:
                raise BadSignatureError from exc
            return message

    shim = types.SimpleNamespace(signing=types.SimpleNamespace(VerifyKey=VerifyKey),
                                 encoding=types.SimpleNamespace(Base64Encoder=None),
                                 exceptions=types.SimpleNamespace(BadSignatureError=BadSignatureError,
                                                                  ValueError=ValueError))
    monkeypatch.setattr(dkim, "nacl", shim, raising=False)


def test_an_ed25519_signature_verifies_and_breaks_when_tampered(ed25519_verification):
    # given an Ed25519 signer (RFC 8463)
    signer = DkimSigner("shop.example", "ed2026", ed25519_pem(), clock=lambda: SIGNED_AT)

    # when a message is signed
    signed = signer.sign(build_email(SPEC))

    # then it verifies, and changing the unsubscribe URL breaks it
    assert signature_tags(signed)[b"a"] == b"ed25519-sha256"
    assert signer.dns_record().startswith("v=DKIM1; k=ed25519; p=")
    assert verify(signed, signer)
    assert not verify(signed.replace(b"u.shop.example", b"evil.example"), signer)


@pytest.mark.parametrize("kwargs, message", [
    ({"private_key_pem": pem(ec.generate_private_key(ec.SECP256R1()))}, "not supported"),
    ({"headers_to_sign": ("to", "subject")}, "From must be signed"),
    ({"headers_to_sign": ("from", "received")}, "should not be signed"),
])
def test_unusable_keys_and_header_lists_are_refused(rsa_pem, kwargs, message):
    arguments = {"domain": "shop.example", "selector": "s", "private_key_pem": rsa_pem} | kwargs
    with pytest.raises(ValueError, match=message):
        DkimSigner(**arguments)


@settings(max_examples=500, deadline=None)
@given(body=st.binary(max_size=300) | st.text(" \t\r\na=", max_size=60).map(str.encode))
def test_the_fast_relaxed_body_canonicalisation_equals_dkimpys(body):
    # given any body, rich in spaces, tabs and line breaks; then both canonicalisations agree byte for byte
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


@settings(max_examples=200, deadline=None)
@given(subject=st.text(max_size=120).filter(lambda s: not re.search(r"[\r\n\x00]", s)),
       text=st.text(max_size=500))
def test_the_fast_message_split_equals_dkimpys_parse(subject, text):
    # given any built message (CRLF), and the same with LF line endings (the fallback path)
    message = build_email(dataclasses.replace(SPEC, subject=subject, text=text))
    for variant in (message, message.replace(b"\r\n", b"\n")):
        # then the split is the one dkimpy's own parser makes
        assert parse_message(variant) == dkim.rfc822_parse(variant)


# Header fields as a sender or a relay may write them: mixed-case names (some signed, some repeated),
# values with tabs, runs of spaces, trailing whitespace and folds (CRLF then WSP).
_names = st.sampled_from(["From", "from", "TO", "Subject", "subject", "Cc", "Date", "X-Tag", "List-Unsubscribe",
                          "Message-ID", "Content-Type"])
_pieces = st.lists(st.sampled_from(["a", "b=c", "<x@y>", " ", "  ", "\t", " \t ", "é", ";", ":", "\x0b", "\r"]),
                   max_size=8).map("".join)
_value = st.lists(_pieces, min_size=1, max_size=4).map(lambda parts: "\r\n ".join(parts).replace("\r\n  ", "\r\n\t"))
_header_block = st.lists(st.tuples(_names, _value), min_size=1, max_size=12)


def _message(fields: list[tuple[str, str]], body: bytes = b"Hi  there \t\r\n\r\n") -> bytes:
    head = b"".join(f"{name}:{value}".encode() + b"\r\n" for name, value in fields)
    return head.replace(b"\r\r\n", b"\r\n") + b"\r\n" + body


@settings(max_examples=500, deadline=None)
@given(fields=_header_block)
def test_the_fast_header_parse_and_relaxed_canonicalisation_equal_dkimpys(fields):
    # given a message with any header block; then the parse is dkimpy's and so is each canonical header
    message = _message(fields)
    headers, body = parse_message(message)
    assert (headers, body) == dkim.rfc822_parse(message)
    expected = [name + b":" + value for name, value in Relaxed.canonicalize_headers(headers)]
    assert [relaxed_header(name, value) for name, value in headers] == expected


@settings(max_examples=300, deadline=None)
@given(name=st.binary(min_size=1, max_size=10),
       value=st.binary(max_size=40) | st.text(" \t\r\n\x0b\x0ca", max_size=20).map(str.encode))
def test_the_fast_relaxed_header_equals_dkimpys_on_any_bytes(name, value):
    # given any name and value (even unlike rfc822_parse's output); then both canonicalisations agree
    [(canonical_name, canonical_value)] = Relaxed.canonicalize_headers([(name, value)])
    assert relaxed_header(name, value) == canonical_name + b":" + canonical_value


@pytest.fixture(scope="module")
def small_rsa_pem() -> bytes:
    return pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))


@settings(max_examples=60, deadline=None)
@given(fields=_header_block.filter(lambda fields: any(name.lower() == "from" for name, _ in fields)))
def test_the_signature_of_any_header_block_is_the_one_dkimpy_writes(small_rsa_pem, fields):
    # given a message with repeated, folded, mixed-case headers, signed by both in the same second
    message = _message(fields)
    signer = DkimSigner("shop.example", "s", small_rsa_pem, clock=lambda: SIGNED_AT)
    include = list(signer.signed_names(name for name, _ in dkim.rfc822_parse(message)[0]))
    with time_machine.travel(SIGNED_AT, tick=False):
        reference = dkim.sign(message, b"s", b"shop.example", small_rsa_pem, canonicalize=(b"relaxed", b"relaxed"),
                              include_headers=include)
    # then the headers are identical, and it verifies
    signed = signer.sign(message)
    assert signed == reference + message
    assert verify(signed, signer)
