"""Template rendering benchmark: personalised emails (subject + HTML + derived text), one process.

    .venv/bin/python bench/render.py                 # 100,000 emails
    .venv/bin/python bench/render.py --count 20000

The template is MJML (compiled once, CSS inlined) with the recipient's name, city, a money amount
and a date in their locale and time zone, a loop over three recent products, and the unsubscribe
link; recipients rotate through five locales and zones. Prints renders/s; figures are printed,
never asserted. Compiling the template and deriving its text part happen before the clock starts.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime

from clarion.content.render import Content, EmailContent, RenderContext, Template, render

LOCALES = [("en-US", "America/New_York"), ("pt-BR", "America/Sao_Paulo"), ("fr", "Europe/Paris"),
           ("de", "Europe/Berlin"), ("es", "Europe/Madrid")]
NAMES = ["Ana", "Bruno", "Chloé", "Dieter", "Elena", "Farid", "Grace", "<Hugo>", "Inês", "João"]
CITIES = ["Lisboa", "São Paulo", "Paris", "Berlin", "Madrid", "Porto", "Lyon"]

SECTION = """
  <mj-section><mj-column>
    <mj-text font-size="16px">Our pick for {{ contact.city | default("you") }}, section {n}: things you may like,
      with a paragraph long enough to look like real marketing copy about seasonal products.</mj-text>
    <mj-image src="https://cdn.example.com/img/{n}.png" alt="Product {n}" />
    <mj-button href="https://shop.example.com/p/{n}?c={{ contact.id }}">Shop now</mj-button>
  </mj-column></mj-section>"""

MJML = """<mjml><mj-head><mj-title>{{ campaign.name }}</mj-title></mj-head><mj-body>
  <mj-section><mj-column>
    <mj-text font-size="22px">Hello {{ contact.first_name | default("there") }}!</mj-text>
    <mj-text>You have {{ contact.attributes.credit | money("EUR") }} of credit until
      {{ contact.custom_dates.credit_expiry | date("long") }} (sent {{ now | datetime("short") }}).</mj-text>
    <mj-raw>{% for product in contact.attributes.recent %}</mj-raw>
    <mj-text>{{ loop.index }}. {{ product.name }}: {{ product.price | money("EUR") }}</mj-text>
    <mj-raw>{% endfor %}</mj-raw>
  </mj-column></mj-section>""" + "".join(SECTION.replace("{n}", str(n)) for n in range(8)) + """
  <mj-section><mj-column>
    <mj-text font-size="11px"><a href="{{ links.unsubscribe }}">Unsubscribe</a> ·
      <a href="{{ links.preferences }}">Preferences</a></mj-text>
  </mj-column></mj-section>
</mj-body></mjml>"""


def contacts(count: int, seed: int = 7) -> list[RenderContext]:
    rng = random.Random(seed)
    result = []
    for i in range(count):
        locale, zone = LOCALES[i % len(LOCALES)]
        profile = {
            "id": i, "first_name": rng.choice(NAMES), "city": rng.choice(CITIES), "locale": locale, "timezone": zone,
            "attributes": {"credit": round(rng.uniform(5, 500), 2),
                           "recent": [{"name": f"Item {rng.randrange(999)}", "price": rng.randrange(5, 300)}
                                      for _ in range(3)]},
            "custom_dates": {"credit_expiry": f"2026-{rng.randrange(1, 13):02d}-15"},
        }
        result.append(RenderContext(contact=profile, campaign={"id": 1, "name": "Spring sale"},
                                    links={"unsubscribe": f"https://u.example.com/{i}",
                                           "preferences": f"https://p.example.com/{i}"},
                                    now=datetime(2026, 3, 1, 15, 0, tzinfo=UTC)))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()

    template = Template(Content(email=EmailContent.from_mjml("{{ contact.first_name | default('Hi') }}, "
                                                             "your {{ contact.city }} picks", MJML,
                                                             preheader="Credit: {{ contact.attributes.credit }}")))
    recipients = contacts(args.count)
    first = render(template, recipients[0], channels=("email",))  # compiles the parts, derives the text
    print(f"html {len(first.email.html.encode()):,} bytes, text {len(first.email.text):,} chars")

    started = time.perf_counter()
    for context in recipients:
        render(template, context, channels=("email",))
    seconds = time.perf_counter() - started
    print(f"{args.count:,} emails (subject + HTML + text) in {seconds:.1f} s: {args.count / seconds:,.0f} renders/s, "
          f"{seconds / args.count * 1e6:,.0f} µs each")


if __name__ == "__main__":
    main()
