"""The channels a worker sends through, built from the settings (one place, so tests can pass their own).

A provider's adapter module is imported only when its channel is configured: the HTTP/2, JWT, Google
auth and web push libraries would otherwise add a third of a second to every ``clarion`` command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from ..channels.inapp import InboxChannel
from ..channels.push_fanout import PushFanout
from ..config import Settings
from ..messages.dkim_signing import DkimSigner
from ..messages.email_compose import EmailComposer
from ..messages.inapp_compose import InAppComposer
from ..messages.push_compose import PushComposer
from ..messages.sms_compose import SmsComposer
from ..messages.voice_compose import VoiceComposer
from ..messages.webhook_compose import WebhookComposer
from ..messages.whatsapp_compose import WhatsAppComposer
from .channel_setup import configured_channels, push_kinds
from .dispatch import ChannelBinding


def email_signer(settings: Settings) -> DkimSigner | None:
    if not (settings.dkim_domain and settings.dkim_selector and settings.dkim_key_file):
        return None
    return DkimSigner(settings.dkim_domain, settings.dkim_selector, Path(settings.dkim_key_file).read_bytes())


def email_transport(settings: Settings):
    if settings.email_transport == "file":
        from ..channels.file import FileChannel

        return FileChannel(Path(settings.email_file_dir))
    if settings.email_transport == "console":
        from ..channels.file import ConsoleChannel

        return ConsoleChannel(sys.stdout)
    from ..channels.smtp import SmtpChannel, SmtpSettings

    return SmtpChannel(SmtpSettings(
        host=settings.smtp_host, port=settings.smtp_port, security=settings.smtp_security,
        username=settings.smtp_username or None, password=settings.smtp_password or None,
        timeout=settings.smtp_timeout_seconds, pool_size=settings.smtp_pool_size,
        max_messages_per_connection=settings.smtp_max_messages_per_connection,
        tls_verify=settings.smtp_tls_verify, ca_file=settings.smtp_ca_file or None))


def sms_transport(settings: Settings):
    if settings.sms_transport == "console":
        from ..channels.file import ConsoleSmsChannel

        return ConsoleSmsChannel(sys.stdout)
    from ..channels.sms_twilio import TwilioSettings, TwilioSmsChannel

    return TwilioSmsChannel(TwilioSettings(
        account_sid=settings.twilio_account_sid, auth_token=settings.twilio_auth_token,
        base_url=settings.twilio_base_url, from_number=settings.sms_from or None,
        messaging_service_sid=settings.twilio_messaging_service_sid or None,
        status_callback_url=(f"{settings.public_url.rstrip('/')}/hooks/twilio/sms/status"
                             if settings.twilio_status_callbacks else None),
        max_connections=settings.sms_concurrency))


def voice_transport(settings: Settings):
    if settings.voice_transport == "console":
        from ..channels.file import ConsoleCallChannel

        return ConsoleCallChannel(sys.stdout)
    from ..channels.voice_twilio import TwilioVoiceChannel

    return TwilioVoiceChannel.from_settings(settings)


def push_providers(settings: Settings) -> dict:
    """The mobile push providers that are configured: FCM (Android, and iOS through Firebase), APNs."""
    providers: dict = {}
    kinds = push_kinds(settings)
    if "apns" in kinds:
        from ..channels.apns import ApnsProvider

        providers["apns"] = ApnsProvider.from_settings(settings)  # ValueError unless ids and topic are set too
    if "fcm" in kinds:
        from ..channels.fcm import FcmProvider

        providers["fcm"] = FcmProvider.from_settings(settings)
    return {kind: provider for kind, provider in providers.items() if provider is not None}


def build_channels(settings: Settings) -> dict[str, ChannelBinding]:
    """A binding for every channel the settings configure (channel_setup decides which; the inbox and
    email always are)."""
    return {channel: _BUILDERS[channel](settings) for channel in sorted(configured_channels(settings))}


def _email(settings: Settings) -> ChannelBinding:
    return ChannelBinding(EmailComposer(settings, email_signer(settings)), email_transport(settings),
                          concurrency=settings.smtp_pool_size, rate_per_second=settings.email_rate_per_second,
                          rate_burst=settings.email_rate_burst)


def _inbox(settings: Settings) -> ChannelBinding:
    # "Sending" to the inbox is storing the message in the checkpoint's transaction.
    return ChannelBinding(InAppComposer(settings), InboxChannel(), concurrency=32)


def _sms(settings: Settings) -> ChannelBinding:
    return ChannelBinding(SmsComposer(settings), sms_transport(settings), concurrency=settings.sms_concurrency,
                          rate_per_second=settings.sms_rate_per_second)


def _voice(settings: Settings) -> ChannelBinding:
    return ChannelBinding(VoiceComposer(settings), voice_transport(settings), concurrency=settings.voice_concurrency,
                          rate_per_second=settings.voice_rate_per_second)


def _whatsapp(settings: Settings) -> ChannelBinding:
    from ..channels.whatsapp import WhatsAppChannel

    return ChannelBinding(WhatsAppComposer(settings), WhatsAppChannel.from_settings(settings),
                          concurrency=settings.whatsapp_concurrency, rate_per_second=settings.whatsapp_rate_per_second)


def _webhook(settings: Settings) -> ChannelBinding:
    from ..channels.webhook import WebhookChannel

    return ChannelBinding(WebhookComposer(settings), WebhookChannel.from_settings(settings),
                          concurrency=settings.webhook_concurrency)


def _webpush(settings: Settings) -> ChannelBinding:
    from ..channels.webpush import WebPushProvider

    return ChannelBinding(PushComposer(settings), PushFanout({"webpush": WebPushProvider.from_settings(settings)}),
                          concurrency=settings.webpush_concurrency, rate_per_second=settings.push_rate_per_second)


def _push(settings: Settings) -> ChannelBinding:
    return ChannelBinding(PushComposer(settings), PushFanout(push_providers(settings)),
                          concurrency=settings.push_concurrency, rate_per_second=settings.push_rate_per_second)


_BUILDERS: dict[str, Callable[[Settings], ChannelBinding]] = {
    "email": _email, "inapp": _inbox, "sms": _sms, "voice": _voice, "whatsapp": _whatsapp, "webhook": _webhook,
    "webpush": _webpush, "push": _push}


async def close_channels(channels: Mapping[str, ChannelBinding]) -> None:
    for binding in channels.values():
        close = getattr(binding.channel, "aclose", None)
        if close is not None:
            await close()
