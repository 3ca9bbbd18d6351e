"""Email construction and DKIM signing benchmark: one process, figures printed, never asserted.

    .venv/bin/python bench/email_build.py                 # 20,000 messages
    .venv/bin/python bench/email_build.py --count 5000

The bodies are real: the MJML template of ``bench/render.py`` rendered for a few recipients (HTML
with inlined CSS, and its derived text part), with the headers of a campaign message (display names
with accents, List-Unsubscribe one-click, List-Id, a delivery id). Prints messages/s for
``build_email`` and for the same message through ``email.message.EmailMessage`` (policy SMTP, CRLF),
then the cost of a DKIM signature: this project's ``DkimSigner`` (RSA-2048 and Ed25519) and dkimpy's
own ``dkim.sign`` (pure-Python RSA) for reference. Rendering and key generation are not timed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from render import MJML, contacts

from clarion.content.render import Content, EmailContent, Template, render
from clarion.messages.dkim_signing import DkimSigner
from clarion.messages.email_message import EmailSpec, build_email

SAMPLES = 5  # distinct rendered bodies, cycled through the specs


def specs(count: int) -> list[EmailSpec]:
    template = Template(Content(email=EmailContent.from_mjml("{{ contact.first_name }}, your {{ contact.city }} picks",
                                                             MJML, preheader="Our picks for you")))
    rendered = [render(template, context, channels=("email",)).email for context in contacts(SAMPLES)]
    sent = datetime(2026, 3, 1, 15, 0, tzinfo=UTC)
    return [EmailSpec(from_name="Boutique Élodie", from_address="news@shop.example",
                      to_address=f"contact{i}@example.org", to_name=f"Cliente Nº {i}",
                      subject=rendered[i % SAMPLES].subject, text=rendered[i % SAMPLES].text,
                      html=rendered[i % SAMPLES].html, message_id=f"c1.d{i}.x7@shop.example", date=sent,
                      list_unsubscribe_url=f"https://u.shop.example/o/{i:012d}abcdefabcdefabcdef",
                      list_unsubscribe_mailto=f"unsub+{i}@shop.example",
                      list_id="Spring sale <spring.c1.shop.example>", headers={"X-Clarion-Delivery": f"d-{i}"})
            for i in range(count)]


def stdlib_build(spec: EmailSpec) -> bytes:
    """The same message through the standard library's EmailMessage API."""
    msg = EmailMessage()
    msg["From"] = Address(spec.from_name, addr_spec=spec.from_address)
    msg["To"] = Address(spec.to_name, addr_spec=spec.to_address)
    msg["Subject"] = spec.subject
    msg["Date"] = spec.date
    msg["Message-ID"] = f"<{spec.message_id}>"
    msg["List-Id"] = spec.list_id
    msg["List-Unsubscribe"] = f"<{spec.list_unsubscribe_url}>, <mailto:{spec.list_unsubscribe_mailto}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in spec.headers.items():
        msg[name] = value
    msg.set_content(spec.text, cte="quoted-printable")
    msg.add_alternative(spec.html, subtype="html", cte="quoted-printable")
    return msg.as_bytes(policy=SMTP)


def rate(label: str, function: Callable[[object], object], items: list) -> float:
    started = time.perf_counter()
    for item in items:
        function(item)
    seconds = time.perf_counter() - started
    print(f"{label:<44} {len(items) / seconds:>10,.0f} msgs/s  {seconds / len(items) * 1e6:>8,.1f} µs each")
    return len(items) / seconds


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    args = parser.parse_args()

    items = specs(args.count)
    sample = build_email(items[0])
    print(f"message {len(sample):,} bytes (html {len(items[0].html.encode()):,}, text {len(items[0].text):,} chars)")
    ours = rate("build_email", build_email, items)
    stdlib = rate("email.message.EmailMessage (policy SMTP)", stdlib_build, items[: max(1, args.count // 10)])
    print(f"build_email is {ours / stdlib:.1f}x faster")

    messages = [build_email(spec) for spec in items[: max(1, args.count // 10)]]
    rsa_pem = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    rate("DkimSigner.sign rsa-sha256 (2048 bits)", DkimSigner("shop.example", "s1", rsa_pem).sign, messages)
    ed_pem = pem(ed25519.Ed25519PrivateKey.generate())
    rate("DkimSigner.sign ed25519-sha256", DkimSigner("shop.example", "s2", ed_pem).sign, messages)
    rate("dkim.sign rsa-sha256 (dkimpy, pure Python)",
         lambda m: dkim.sign(m, b"s1", b"shop.example", rsa_pem, canonicalize=(b"relaxed", b"relaxed")),
         messages[: max(1, len(messages) // 10)])


if __name__ == "__main__":
    main()
