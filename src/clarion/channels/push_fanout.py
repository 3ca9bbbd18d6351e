"""One push message to every live device of a contact: per-device sends, one combined result.

A push campaign has one ledger row per contact (the unique key is per contact, not per device), and a
contact may have a phone, a tablet and two browsers. The fan-out sends the message to each target
through the provider of its kind (FCM, APNs, web push) concurrently, and combines the answers:

=========================================  ==============================================================
per-device answers                         the delivery's outcome
=========================================  ==============================================================
at least one sent                          sent (the contact got it); the others' answers in ``detail``
else any config_error                      config_error (the campaign pauses: our credentials are wrong)
else any retry                             retry (every device is tried again; gone ones are invalidated
                                           by then, so the retry goes to the live ones)
else any failed                            failed
else (every device gone)                   bad_address
=========================================  ==============================================================

Tokens a provider declared gone are carried in ``DeliveryResult.gone`` whatever the combined outcome,
and the checkpoint invalidates them. A device whose send was retryable while another device got the
message is not retried: the contact was reached, and a second notification on the other device would
be a duplicate.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from .base import DeliveryResult, OutboundPush, Outcome, PushProvider, PushTarget

_PRECEDENCE = (Outcome.CONFIG_ERROR, Outcome.RETRY, Outcome.FAILED, Outcome.BAD_ADDRESS)


class PushFanout:
    def __init__(self, providers: Mapping[str, PushProvider]) -> None:
        self.providers = dict(providers)

    async def send(self, message: OutboundPush) -> DeliveryResult:
        if not message.targets:
            return DeliveryResult(Outcome.BAD_ADDRESS, code="no_device", detail="the contact has no live device")
        if len(message.targets) == 1:  # the common case, without gather's task overhead
            return await self._one(message, message.targets[0])
        results = await asyncio.gather(*(self._one(message, target) for target in message.targets))
        return combine(list(zip(message.targets, results, strict=True)))

    async def _one(self, message: OutboundPush, target: PushTarget) -> DeliveryResult:
        provider = self.providers.get(target.kind)
        if provider is None:
            return DeliveryResult(Outcome.FAILED, code="no_provider",
                                  detail=f"no {target.kind} provider is configured")
        return await provider.send_to(message, target)

    async def aclose(self) -> None:
        for provider in self.providers.values():
            await provider.aclose()


def combine(answers: list[tuple[PushTarget, DeliveryResult]]) -> DeliveryResult:
    gone = tuple(g for _, result in answers for g in result.gone)
    sent = [result for _, result in answers if result.outcome is Outcome.SENT]
    others = "; ".join(f"{target.kind} …{target.token[-8:]}: {result.outcome.value} {result.code or ''}".rstrip()
                       for target, result in answers if result.outcome is not Outcome.SENT)
    if sent:
        ids = ",".join(r.provider_id for r in sent if r.provider_id)
        detail = f"{len(sent)} of {len(answers)} devices" + (f" ({others})" if others else "")
        return DeliveryResult(Outcome.SENT, provider_id=ids[:250] or None, detail=detail, gone=gone)
    for outcome in _PRECEDENCE:
        chosen = [result for _, result in answers if result.outcome is outcome]
        if chosen:
            waits = [r.retry_after for r in chosen if r.retry_after is not None]
            first = chosen[0]
            return DeliveryResult(outcome, code=first.code, detail=others[:1000],
                                  retry_after=max(waits) if waits else None, gone=gone)
    raise AssertionError("every outcome is covered")  # pragma: no cover
