"""The channels a worker sends through, built from the settings (one place, so tests can pass their own)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

from ..config import Settings
from ..delivery.dkim_signing import DkimSigner
from ..delivery.email_compose import EmailComposer
from ..delivery.sms_compose import SmsComposer
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


def build_channels(settings: Settings) -> dict[str, ChannelBinding]:
    email = ChannelBinding(EmailComposer(settings, email_signer(settings)), email_transport(settings),
                           concurrency=settings.smtp_pool_size, rate_per_second=settings.email_rate_per_second,
                           rate_burst=settings.email_rate_burst)
    bindings = {"email": email}
    if settings.sms_transport != "none":
        bindings["sms"] = ChannelBinding(SmsComposer(settings), sms_transport(settings),
                                         concurrency=settings.sms_concurrency,
                                         rate_per_second=settings.sms_rate_per_second)
    return bindings


async def close_channels(channels: Mapping[str, ChannelBinding]) -> None:
    for binding in channels.values():
        close = getattr(binding.channel, "aclose", None)
        if close is not None:
            await close()
