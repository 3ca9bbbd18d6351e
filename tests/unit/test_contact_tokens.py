"""Contact tokens: a customer's app acts as one contact, for one scope, until the token expires."""

from __future__ import annotations

import pytest

from clarion.tracking.contact_tokens import sign_contact_token, verify_contact_token
from clarion.tracking.links import InvalidLink, UnsubscribeTarget, sign_unsubscribe

SECRET = "s3cret"
NOW = 1_800_000_000.0


def test_a_token_names_its_contact_and_scope():
    token = sign_contact_token(SECRET, 42, "inbox", 3_600, now=NOW)
    found = verify_contact_token(SECRET, token, "inbox", now=NOW + 10)
    assert (found.contact_id, found.scope, found.expires_at) == (42, "inbox", int(NOW) + 3_600)


@pytest.mark.parametrize("tamper, why", [
    (lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"), "signature"),
    (lambda t: sign_contact_token("other secret", 42, "inbox", 3_600, now=NOW), "signature"),
    (lambda t: sign_contact_token(SECRET, 42, "webpush", 3_600, now=NOW), "not 'inbox'"),
    (lambda t: sign_contact_token(SECRET, 42, "inbox", 60, now=NOW - 120), "expired"),
    (lambda t: "ct1.garbage", "malformed"),
    (lambda t: sign_unsubscribe(SECRET, UnsubscribeTarget(42, 1, "email", None)), "malformed"),
])
def test_a_forged_edited_expired_or_foreign_token_is_refused(tamper, why):
    # given a genuine token, then a changed one (other secret, scope, expiry, shape, an unsubscribe token)
    token = tamper(sign_contact_token(SECRET, 42, "inbox", 3_600, now=NOW))
    # then verifying it for the inbox fails with a reason that says which
    with pytest.raises(InvalidLink, match=why):
        verify_contact_token(SECRET, token, "inbox", now=NOW)


def test_an_edited_contact_id_breaks_the_signature():
    import base64
    import json

    prefix, payload, tag = sign_contact_token(SECRET, 42, "inbox", 3_600, now=NOW).split(".")
    forged = base64.urlsafe_b64encode(json.dumps([43, "inbox", int(NOW) + 3_600]).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidLink, match="signature"):
        verify_contact_token(SECRET, f"{prefix}.{forged}.{tag}", "inbox", now=NOW)
