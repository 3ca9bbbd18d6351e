"""Machines are not people: each rule of tracking.classify against request shapes seen in the wild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clarion.tracking.classify import Request, classify_click, classify_open, ip_prefix

SENT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
LATER = SENT + timedelta(minutes=7)

SAFARI = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.1 Safari/605.1.15")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.1 Mobile/15E148 Safari/604.1")
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
APPLE_MPP = "Mozilla/5.0"  # what Mail Privacy Protection's prefetch sends, and nothing more
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)"
BARRACUDA = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"
PYTHON = "python-requests/2.31.0"


def click(request: Request, at: datetime = LATER, *, honeypot: bool = False, others=(), position: int = 1):
    return classify_click(request, sent_at=SENT, at=at, honeypot=honeypot, other_clicks=list(others),
                          position=position)


@pytest.mark.parametrize(("user_agent", "agent"), [(SAFARI, "browser"), (IPHONE, "mobile")])
def test_a_person_in_a_browser_is_human(user_agent, agent):
    verdict = click(Request("GET", user_agent, "203.0.113.9"))
    assert (verdict.machine, verdict.reason, verdict.agent) == (False, None, agent)


@pytest.mark.parametrize(("request_", "reason"), [
    (Request("HEAD", SAFARI), "head_request"),
    (Request("GET", ""), "empty_user_agent"),
    (Request("GET", GMAIL_PROXY), "mail_proxy"),
    (Request("GET", APPLE_MPP), "mail_proxy"),
    (Request("GET", BARRACUDA), "security_scanner"),
    (Request("GET", PYTHON), "bot_user_agent"),
])
def test_machine_clients_are_named_by_their_rule(request_, reason):
    assert click(request_).reason == reason and click(request_).machine


def test_an_open_from_apples_network_with_a_browser_agent_is_the_privacy_proxy():
    assert classify_open(Request("GET", SAFARI, "17.58.101.12")).reason == "mail_proxy"
    assert classify_open(Request("GET", SAFARI, "203.0.113.9")).machine is False


def test_a_desktop_mail_client_opening_the_message_is_a_person():
    assert classify_open(Request("GET", OUTLOOK, "203.0.113.9")).machine is False


def test_a_click_seconds_after_the_send_is_a_scanner():
    assert click(Request("GET", SAFARI), at=SENT + timedelta(seconds=4)).reason == "too_soon"
    assert click(Request("GET", SAFARI), at=SENT + timedelta(seconds=40)).machine is False


def test_several_links_of_one_message_within_a_second_are_a_scanner():
    # given a click on link 1, when link 2 is clicked 300 ms later, then it is a burst
    assert click(Request("GET", SAFARI), others=[(LATER - timedelta(milliseconds=300), 1)], position=2).reason \
        == "link_burst"
    # but the same link clicked twice (a double click) is the person's, and so is a link a minute later
    assert click(Request("GET", SAFARI), others=[(LATER - timedelta(milliseconds=300), 2)], position=2).machine \
        is False
    assert click(Request("GET", SAFARI), others=[(LATER - timedelta(minutes=1), 1)], position=2).machine is False


def test_the_hidden_honeypot_link_is_only_ever_clicked_by_machines():
    assert click(Request("GET", SAFARI), honeypot=True).reason == "honeypot_link"


@pytest.mark.parametrize(("ip", "prefix"), [("203.0.113.77", "203.0.113.0/24"),
                                            ("2001:db8:abcd:12::1", "2001:db8:abcd::/48"),
                                            ("testclient", None), (None, None)])
def test_the_ip_is_kept_as_its_network_only(ip, prefix):
    assert ip_prefix(ip) == prefix
