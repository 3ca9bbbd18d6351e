"""Which channels the settings configure, read from the settings alone (no provider adapter is imported).

:func:`clarion.runners.channels.build_channels` builds a binding for exactly these channels, and the
campaign service and the dry run ask the same question before a campaign starts: what a user is told
and what a worker does can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import Settings


def push_kinds(settings: Settings) -> tuple[str, ...]:
    """The mobile push providers the settings turn on (APNs by its key file, FCM by its service account)."""
    return tuple(kind for kind, on in (("apns", settings.apns_key_file), ("fcm", settings.fcm_service_account_file))
                 if on)


# Email always has a transport (SMTP to 127.0.0.1:25 by default) and the inbox needs none.
_IS_CONFIGURED: dict[str, Callable[[Settings], bool]] = {
    "email": lambda s: True,
    "inapp": lambda s: True,
    "sms": lambda s: s.sms_transport != "none",
    "voice": lambda s: s.voice_transport != "none",
    "whatsapp": lambda s: bool(s.whatsapp_phone_number_id and s.whatsapp_access_token),
    "webhook": lambda s: bool(s.webhook_secret),  # the channel never sends unsigned
    "webpush": lambda s: bool(s.webpush_vapid_private_key_file and s.webpush_vapid_subject),
    "push": lambda s: bool(push_kinds(s)),
}

_HOW_TO_CONFIGURE = {
    "sms": "no SMS provider is configured: set CLARION_SMS_TRANSPORT (see docs/channels/sms.md)",
    "voice": "no voice provider is configured: set CLARION_VOICE_TRANSPORT (see docs/channels/voice.md)",
    "whatsapp": "WhatsApp is not configured: set CLARION_WHATSAPP_PHONE_NUMBER_ID and "
                "CLARION_WHATSAPP_ACCESS_TOKEN (see docs/channels/whatsapp.md)",
    "webhook": "the webhook channel is not configured: set CLARION_WEBHOOK_SECRET (see docs/channels/webhook.md)",
    "webpush": "web push is not configured: set CLARION_WEBPUSH_VAPID_PRIVATE_KEY_FILE and "
               "CLARION_WEBPUSH_VAPID_SUBJECT (see docs/channels/webpush.md)",
    "push": "no mobile push provider is configured: set CLARION_FCM_SERVICE_ACCOUNT_FILE or the CLARION_APNS_* "
            "settings (see docs/channels/fcm.md, docs/channels/apns.md)",
}


def configured_channels(settings: Settings) -> frozenset[str]:
    return frozenset(channel for channel, configured in _IS_CONFIGURED.items() if configured(settings))


def unavailable(channel: str) -> str:
    """Why a channel cannot send, and what to set (the detail of ``channel_unavailable``)."""
    return _HOW_TO_CONFIGURE.get(channel, f"no {channel} channel is configured")
