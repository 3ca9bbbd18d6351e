"""Why a delivery was skipped, deferred or failed: stable codes, each with the sentence a person reads.

The codes are stored in ``deliveries.reason`` and ``delivery_log.reason`` and are part of the API:
add new ones, never rename them.
"""

from __future__ import annotations

REASONS: dict[str, str] = {
    # skipped by the policy chain (in the order the chain checks them)
    "erased": "the contact was erased (GDPR) after the campaign was queued",
    "merged": "the contact was merged into another profile, which gets its own delivery",
    "no_address": "the contact has no address for this channel",
    "suppressed": "the address is on the suppression list",
    "no_consent": "the contact has not consented to this channel or topic",
    "holdout": "the contact is in the global holdout group, which never gets marketing messages",
    "not_eligible": "the contact no longer satisfies the campaign's eligibility rule",
    "duplicate_address": "another contact with the same address already got this campaign",
    "outside_session_window": "WhatsApp free-form text may only go within 24 hours of the contact's last "
                              "message, and the template has no approved WhatsApp template to send instead",
    "quiet_hours": "inside quiet hours in the recipient's local time: deferred to the next allowed time",
    "frequency_cap": "the contact reached a frequency cap",
    # failed while sending
    "render_error": "the template could not be rendered for this contact",
    "bad_address": "the provider said the address does not exist: it is now suppressed",
    "rejected": "the provider refused the message permanently (policy or content), the address is kept",
    "config_error": "the channel is misconfigured (credentials, sender, TLS): the campaign was paused",
    "retry": "the provider answered with a temporary error: retried later",
    "max_attempts": "every attempt allowed failed with a temporary error",
    "expired": "the delivery was not sent within the campaign's lifetime",
    "channel_unavailable": "no channel is configured for this delivery",
    "cancelled": "the campaign was cancelled",
}


def describe(code: str | None) -> str:
    return REASONS.get(code or "", code or "")
