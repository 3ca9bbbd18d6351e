"""How many SMS a text costs: the encoding a handset network uses for it and the number of segments.

    count_segments("Hello")        -> SmsSegments(encoding="GSM-7", segments=1, units=5)
    count_segments("Price: 5 €")   -> GSM-7, 11 septets: "€" is an escape pair (2 septets)
    count_segments("Hi 👋")        -> UCS-2, 5 code units: one character outside GSM-7 switches the whole text

Sizes (3GPP TS 23.040 §9.2.3.24.1, §9.2.3.16): the user data of one SMS is 140 octets, 160 septets in
the GSM 7-bit default alphabet or 70 UCS-2 code units. A concatenated message spends 6 octets of each
part on the user data header, leaving 134 octets: 153 septets (134 * 8 // 7) or 67 UCS-2 code units.

UCS-2 is counted in UTF-16 code units, as providers do (Twilio bills "👋" as 2): a character outside
the Basic Multilingual Plane is a surrogate pair. Neither a surrogate pair nor a GSM escape pair
(ESC + extension character) is split across two parts, so a part can hold one unit less than its size,
and the count of segments is made part by part, not by dividing the total.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# 3GPP TS 23.038 §6.2.1: the GSM 7-bit default alphabet, in table order (0x00-0x7F) without 0x1B, the
# escape to the extension table, which is not a character of its own.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# 3GPP TS 23.038 §6.2.1.1: the default extension table; each costs ESC + itself, 2 septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153  # septets: 140 octets, and 134 octets after the 6-octet concatenation UDH
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units, for the same octets


@dataclass(frozen=True)
class SmsSegments:
    encoding: Encoding
    segments: int  # SMS sent (and usually billed); an empty text still goes as one
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2

    @property
    def concatenated(self) -> bool:
        return self.segments > 1


def count_segments(text: str) -> SmsSegments:
    widths = gsm7_widths(text)
    if widths is not None:
        return SmsSegments("GSM-7", _segments(widths, GSM7_SINGLE, GSM7_PART), sum(widths))
    widths = [2 if ord(char) > 0xFFFF else 1 for char in text]  # beyond the BMP: a surrogate pair
    return SmsSegments("UCS-2", _segments(widths, UCS2_SINGLE, UCS2_PART), sum(widths))


def gsm7_widths(text: str) -> list[int] | None:
    """Septets per character, or None when a character is not in the GSM 7-bit alphabet at all."""
    widths = []
    for char in text:
        if char in GSM7_BASIC:
            widths.append(1)
        elif char in GSM7_EXTENSION:
            widths.append(2)
        else:
            return None
    return widths


def _segments(widths: list[int], single: int, per_part: int) -> int:
    if sum(widths) <= single:
        return 1
    parts, used = 1, 0
    for width in widths:
        if used + width > per_part:  # a pair does not straddle two parts: it opens the next one
            parts, used = parts + 1, 0
        used += width
    return parts
