"""SMS segment counting: GSM-7 with its extension table, UCS-2 in UTF-16 code units, part boundaries."""

from __future__ import annotations

import pytest

from clarion.channels.sms_segments import GSM7_BASIC, GSM7_EXTENSION, SmsSegments, count_segments


def test_the_gsm7_tables_have_the_sizes_of_3gpp_ts_23_038():
    # given the basic table (128 positions, one of them the escape) and the extension table (10 characters)
    # then
    assert len(GSM7_BASIC) == 127
    assert len(GSM7_EXTENSION) == 10
    assert not GSM7_BASIC & GSM7_EXTENSION


@pytest.mark.parametrize(("text", "expected"), [
    ("", SmsSegments("GSM-7", 1, 0)),
    ("Hello", SmsSegments("GSM-7", 1, 5)),
    ("a" * 160, SmsSegments("GSM-7", 1, 160)),
    ("a" * 161, SmsSegments("GSM-7", 2, 161)),
    ("a" * 306, SmsSegments("GSM-7", 2, 306)),
    ("a" * 307, SmsSegments("GSM-7", 3, 307)),
    ("Café à Paris, 5 £", SmsSegments("GSM-7", 1, 17)),
])
def test_plain_gsm7_texts(text, expected):
    # when
    counted = count_segments(text)
    # then
    assert counted == expected


@pytest.mark.parametrize(("text", "units", "segments"), [
    ("5 €", 4, 1),
    ("€" * 80, 160, 1),
    ("€" * 81, 162, 2),
    ("[{}]|^~\\", 16, 1),
    ("a" * 159 + "€", 161, 2),
])
def test_extension_characters_count_as_two_septets(text, units, segments):
    # when
    counted = count_segments(text)
    # then
    assert (counted.encoding, counted.units, counted.segments) == ("GSM-7", units, segments)


def test_an_escape_pair_is_not_split_across_parts():
    # given 152 septets, then a 2-septet "€" that does not fit in the first part's 153, then 152 more
    text = "a" * 152 + "€" + "a" * 152
    # when
    counted = count_segments(text)
    # then 306 septets would fit in 2 parts of 153, but the "€" opens the second and the tail needs a third
    assert counted == SmsSegments("GSM-7", 3, 306)


@pytest.mark.parametrize(("text", "units", "segments"), [
    ("Hi 👋", 5, 1),
    ("ж" * 70, 70, 1),
    ("ж" * 71, 71, 2),
    ("ж" * 134, 134, 2),
    ("ж" * 135, 135, 3),
    ("a" * 159 + "ж", 160, 3),  # one Cyrillic letter turns 160 septets into 160 UCS-2 units
    ("😀" * 35, 70, 1),
    ("😀" * 36, 72, 2),
])
def test_ucs2_texts_count_utf16_code_units(text, units, segments):
    # when
    counted = count_segments(text)
    # then
    assert (counted.encoding, counted.units, counted.segments) == ("UCS-2", units, segments)


def test_a_surrogate_pair_is_not_split_across_parts():
    # given 66 units, an emoji (2 units) that does not fit in the first part's 67, then 66 more
    text = "ж" * 66 + "😀" + "ж" * 66
    # when
    counted = count_segments(text)
    # then 134 units would fit in 2 parts of 67, but the emoji opens the second and the tail needs a third
    assert counted == SmsSegments("UCS-2", 3, 134)
    assert counted.concatenated


def test_one_emoji_switches_the_whole_text_to_ucs2():
    # given a text that is one GSM-7 segment on its own
    text = "a" * 100
    # when an emoji is added
    counted = count_segments(text + "🎉")
    # then every character now costs a UCS-2 unit: 102 units, two parts
    assert count_segments(text).segments == 1
    assert counted == SmsSegments("UCS-2", 2, 102)
