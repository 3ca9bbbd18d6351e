"""Machines are not people: each open and click is ``human`` or ``machine``, with the rule that decided.

Apple Mail Privacy Protection fetches every pixel when a message arrives, Gmail fetches images through
its proxy, and corporate security gateways follow every link within seconds of delivery. Counted as
people they would make send-time models, A/B winners and "engaged" segments wrong, so each rule below
marks a request as machine and names itself in ``engagements.reason`` (documented in docs/tracking.md):

=====================  ==============================================================================
rule                   a request is a machine when
=====================  ==============================================================================
``head_request``       it is a HEAD request: link checkers and scanners ask for headers; people don't
``empty_user_agent``   it has no User-Agent at all
``mail_proxy``         the user agent is a mail image proxy (Google, Yahoo), or the bare ``Mozilla/5.0``
                       with nothing else that Apple's Mail Privacy Protection sends, or the address is in
                       Apple's 17.0.0.0/8 (opens only: Apple fetches pixels from its own network)
``security_scanner``   the user agent names a mail security gateway (Barracuda, Mimecast, Proofpoint ...)
``bot_user_agent``     crawlerdetect knows the user agent as a bot, crawler or HTTP library
``honeypot_link``      it followed the hidden link in HTML email that no person can see or click
``too_soon``           a click came less than :data:`TOO_SOON` after the message was sent
``link_burst``         another link of the same message was clicked within :data:`BURST` before it
=====================  ==============================================================================
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

# Security gateways scan a message on receipt, before the mailbox shows it: a click this soon after the
# send is theirs. People take longer to open a message, read it and click (Mimecast and Proofpoint
# document scanning at delivery; 10 s is well under any human's open-to-click time).
TOO_SOON = timedelta(seconds=10)
# A scanner follows every link of a message at once; a person clicks one, reads, and maybe another.
BURST = timedelta(seconds=1)

_MAIL_PROXIES = re.compile(r"GoogleImageProxy|ggpht\.com|YahooMailProxy|Yahoo!? ?Mail Proxy|"
                           r"Mail\.ru ImageProxy|OutlookImageProxy", re.IGNORECASE)
_SCANNERS = re.compile(r"Barracuda|Mimecast|Proofpoint|MessageLabs|IronPort|Trend ?Micro|SonicWall|"
                       r"FireEye|Zscaler|Forcepoint|Sophos|Symantec|Bitdefender|SafeLinks|"
                       r"Microsoft Defender|urldefense|Cloudmark|Vade ?Secure|Check ?Point", re.IGNORECASE)
_MOBILE = re.compile(r"Mobile|Android|iPhone|iPad", re.IGNORECASE)
_EMAIL_CLIENTS = re.compile(r"Outlook|Thunderbird|Microsoft Office|ms-office|AppleMail|Apple Mail", re.IGNORECASE)
_APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
MAX_USER_AGENT = 512  # characters looked at: longer ones are cut before any pattern runs


@dataclass(frozen=True)
class Request:
    """What a tracking request tells about its client."""

    method: str = "GET"
    user_agent: str = ""
    ip: str | None = None


@dataclass(frozen=True)
class Verdict:
    machine: bool
    reason: str | None  # the rule that made it machine, or None for a person
    agent: str  # the user agent's class


@lru_cache(maxsize=1)
def _crawler_detect():
    from crawlerdetect import CrawlerDetect  # ~40 ms to compile its patterns: built on first use

    return CrawlerDetect()


@lru_cache(maxsize=4096)
def agent_of(user_agent: str) -> tuple[str, str | None]:
    """(class, machine rule or None) of a user agent: cached, because a campaign's clicks share a few."""
    ua = user_agent[:MAX_USER_AGENT].strip()
    if not ua:
        return "unknown", "empty_user_agent"
    if _MAIL_PROXIES.search(ua) or ua == "Mozilla/5.0":
        return "proxy", "mail_proxy"
    if _SCANNERS.search(ua):
        return "scanner", "security_scanner"
    if _EMAIL_CLIENTS.search(ua):  # a desktop client opening the message (its link previews are not clicks)
        return "email_client", None
    if _crawler_detect().isCrawler(ua):
        return "bot", "bot_user_agent"
    if _MOBILE.search(ua):
        return "mobile", None
    return ("browser", None) if ua.startswith("Mozilla/") else ("unknown", None)


def _in_apple_network(ip: str | None) -> bool:
    try:
        return ip is not None and ipaddress.ip_address(ip) in _APPLE_NETWORK
    except ValueError:
        return False


def classify_open(request: Request) -> Verdict:
    agent, rule = agent_of(request.user_agent)
    if request.method == "HEAD":
        return Verdict(True, "head_request", agent)
    if rule is None and _in_apple_network(request.ip):
        rule = "mail_proxy"
    return Verdict(rule is not None, rule, agent)


def classify_click(request: Request, *, sent_at: datetime | None, at: datetime, honeypot: bool,
                   other_clicks: list[tuple[datetime, int]], position: int) -> Verdict:
    """``other_clicks``: (time, link position) of the delivery's earlier clicks."""
    agent, rule = agent_of(request.user_agent)
    if request.method == "HEAD":
        return Verdict(True, "head_request", agent)
    if honeypot:
        return Verdict(True, "honeypot_link", agent)
    if rule is not None:
        return Verdict(True, rule, agent)
    if sent_at is not None and at - sent_at < TOO_SOON:
        return Verdict(True, "too_soon", agent)
    if any(link != position and abs(at - when) <= BURST for when, link in other_clicks):
        return Verdict(True, "link_burst", agent)
    return Verdict(False, None, agent)


def ip_prefix(ip: str | None) -> str | None:
    """The client's network, never its address: IPv4 /24, IPv6 /48 (what GA4 and Matomo keep)."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
