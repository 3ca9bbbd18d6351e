"""Message building: one composer per channel turns a leased delivery and its rendered template into what the
channel adapter sends (MIME and DKIM for email, payloads for push, SMS, WhatsApp, voice, webhooks, in-app)."""
