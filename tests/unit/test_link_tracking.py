"""Link rewriting at compose time, and the signed tokens behind /c/ and /o/."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clarion.messages.link_tracking import HONEYPOT, LinkTracker, TrackingOptions
from clarion.tracking.links import InvalidLink, UnsubscribeTarget, sign_unsubscribe
from clarion.tracking.tokens import sign_click, sign_open, verify_click, verify_open

SECRET = "test-link-secret"
BASE = "https://t.shop.example"
UTM = {"utm_source": "clarion", "utm_medium": "email", "utm_campaign": "spring"}


def tracker(delivery_id: int = 41, **options) -> LinkTracker:
    return LinkTracker(SECRET, BASE, delivery_id, TrackingOptions(**{"utm": UTM, **options}))


def target_of(url: str) -> tuple[int, int]:
    assert url.startswith(f"{BASE}/c/")
    click = verify_click(SECRET, url.rsplit("/", 1)[1])
    return click.delivery_id, click.position


def hrefs(html: str) -> list[str]:
    import re

    return re.findall(r'href="([^"]*)"', html)


def test_every_web_link_of_the_html_is_rewritten_and_stored_with_utm_and_its_name():
    # given an HTML body with two links, one named and one by its text
    html = ('<p><a href="https://shop.example/sale?x=1&amp;y=2" data-clarion-name="hero">Sale</a> '
            "<a class='b' href='https://shop.example/new'>New <b>in</b></a></p>")
    # when the tracker rewrites it
    links = tracker()
    out = links.html(html)
    # then both hrefs are click URLs naming (delivery, position), and the stored rows keep the targets with UTM
    assert [target_of(h) for h in hrefs(out)] == [(41, 1), (41, 2)]
    first, second = links.links
    assert first.url == ("https://shop.example/sale?x=1&y=2&utm_source=clarion&utm_medium=email"
                         "&utm_campaign=spring&utm_content=hero")
    assert (first.name, second.name) == ("hero", "New in")
    assert "data-clarion-name" not in out and 'class=\'b\'' in out


def test_links_that_are_not_web_links_or_are_ours_or_marked_are_left_alone():
    html = ('<a href="mailto:help@shop.example">mail</a><a href="tel:+15551234">call</a><a href="#top">top</a>'
            f'<a href="{BASE}/u/tok">unsubscribe</a><a href="https://x.example/a" data-clarion-notrack>keep</a>'
            '<a href="clarion-notrack:https://x.example/b">filter</a><a href="/relative">rel</a>')
    links = tracker()
    out = links.html(html)
    assert hrefs(out) == ["mailto:help@shop.example", "tel:+15551234", "#top", f"{BASE}/u/tok",
                          "https://x.example/a", "https://x.example/b", "/relative"]
    assert links.links == [] and "notrack" not in out


def test_the_text_part_shares_positions_with_the_html_and_keeps_sentence_punctuation():
    links = tracker()
    links.html('<a href="https://shop.example/sale">Sale</a>')
    text = links.text("See https://shop.example/sale. Or (https://shop.example/other), mail me@x.example")
    urls = text.split()
    assert target_of(urls[1].rstrip(".")) == (41, 1) and urls[1].endswith(".")
    assert target_of(urls[3].strip("(),")) == (41, 2) and urls[3].endswith("),")
    assert [link.position for link in links.links] == [1, 2]


def test_utm_parameters_already_in_a_url_are_kept_and_a_fragment_stays_last():
    links = tracker()
    links.url("https://shop.example/p?utm_source=news#reviews", "p")
    assert links.links[0].url == ("https://shop.example/p?utm_source=news&utm_medium=email&utm_campaign=spring"
                                  "&utm_content=p#reviews")


def test_tracking_off_keeps_utm_but_stores_nothing_and_a_test_send_tracks_nothing():
    off = tracker(links=False, opens=False)
    assert off.url("https://shop.example/a", "a") == ("https://shop.example/a?utm_source=clarion&utm_medium=email"
                                                      "&utm_campaign=spring&utm_content=a")
    assert off.links == [] and off.finish_html("<body></body>") == "<body></body>"
    test_send = tracker(delivery_id=0)
    assert not test_send.url("https://shop.example/a").startswith(BASE) and test_send.links == []


def test_the_honeypot_and_the_pixel_go_before_the_end_of_the_body():
    links = tracker()
    out = links.finish_html("<html><body><p>Hi</p></body></html>")
    assert out.endswith("</body></html>") and 'aria-hidden="true"' in out and f'src="{BASE}/o/' in out
    honeypot = links.links[-1]
    assert (honeypot.name, honeypot.url) == (HONEYPOT, "")
    assert verify_open(SECRET, out.split(f"{BASE}/o/")[1].split('"')[0]) == 41


def test_an_sms_link_path_stays_under_25_characters():
    # given a large delivery id (a billion deliveries) and a message with many links
    links = tracker(delivery_id=10**9, utm={})
    for n in range(1, 100):
        url = links.url(f"https://shop.example/{n}")
        assert len(url) - len(BASE) < 25


@given(st.integers(min_value=1, max_value=2**62), st.integers(min_value=1, max_value=10_000))
def test_click_tokens_round_trip(delivery_id, position):
    assert verify_click(SECRET, sign_click(SECRET, delivery_id, position)).delivery_id == delivery_id


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1],  # truncated
    lambda t: t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1],  # edited
    lambda t: t + "A",  # extended
    lambda t: t + "=",  # padded
    lambda t: "é" + t[1:],  # not ASCII
    lambda t: t * 5,  # huge
    lambda t: "",
])
def test_forged_edited_or_truncated_tokens_are_refused(mangle):
    token = sign_click(SECRET, 1234, 3)
    with pytest.raises(InvalidLink):
        verify_click(SECRET, mangle(token))


def test_each_token_kind_has_its_own_signature():
    with pytest.raises(InvalidLink):
        verify_click(SECRET, sign_open(SECRET, 1234))
    with pytest.raises(InvalidLink):
        verify_open(SECRET, sign_click(SECRET, 1234, 1))
    with pytest.raises(InvalidLink):
        verify_click(SECRET, sign_unsubscribe(SECRET, UnsubscribeTarget(1, 1, "email", None)))
    with pytest.raises(InvalidLink):
        verify_click("another-secret", sign_click(SECRET, 1234, 1))
