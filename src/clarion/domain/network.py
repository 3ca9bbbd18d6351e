"""Which hosts Clarion may call: one reading of IP addresses, used when an endpoint is registered and when it
is called, so the two can never disagree.

A URL's host may spell an IPv4 address the way ``inet_aton`` and browsers read it (the WHATWG URL
Standard, "IPv4 parser"): ``127.1``, ``0177.0.0.1``, ``0x7f.1`` and ``2130706433`` are all 127.0.0.1.
:func:`host_address` reads those spellings, so a registration check cannot be passed with a spelling the
resolver later turns into a loopback address.

:func:`is_public` is true only for globally routable unicast addresses: every block of IANA's IPv4 and
IPv6 Special-Purpose Address Registries (RFC 6890) is refused, whatever its "globally reachable" column
says (no push service or webhook receiver lives on an AS112 or anycast relay address), and so is
multicast. Python's ``ipaddress.is_global`` is not used: before 3.12.4/3.11.10 it counted 192.0.0.0/24
(where some clouds answer metadata requests) and multicast as global.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

Address = IPv4Address | IPv6Address

# https://www.iana.org/assignments/iana-ipv4-special-registry (and multicast, RFC 5771)
_V4_NOT_PUBLIC = tuple(IPv4Network(block) for block in (
    "0.0.0.0/8",  # "this network" (RFC 791)
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # private use (RFC 1918)
    "100.64.0.0/10",  # shared address space, carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",  # loopback (RFC 1122)
    "169.254.0.0/16",  # link local, where cloud metadata services answer (RFC 3927)
    "192.0.0.0/24",  # IETF protocol assignments (RFC 6890), metadata on some clouds
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation (RFC 5737)
    "192.31.196.0/24", "192.175.48.0/24",  # AS112 (RFC 7535, RFC 7534)
    "192.52.193.0/24",  # AMT (RFC 7450)
    "192.88.99.0/24",  # deprecated 6to4 relay anycast (RFC 7526)
    "198.18.0.0/15",  # benchmarking (RFC 2544)
    "224.0.0.0/4",  # multicast (RFC 5771)
    "240.0.0.0/4",  # reserved, and the limited broadcast address 255.255.255.255 (RFC 1112, RFC 919)
))

# Global unicast is 2000::/3 (RFC 4291 §2.4); everything outside it (loopback, unspecified, IPv4-mapped and
# -compatible, discard-only, unique local, link-local, site-local, multicast) is refused without a table.
_V6_GLOBAL_UNICAST = IPv6Network("2000::/3")
# https://www.iana.org/assignments/iana-ipv6-special-registry, the blocks inside 2000::/3
_V6_NOT_PUBLIC = tuple(IPv6Network(block) for block in (
    "2001::/23",  # IETF protocol assignments, Teredo included (RFC 2928, RFC 4380)
    "2001:db8::/32", "3fff::/20",  # documentation (RFC 3849, RFC 9637)
    "2620:4f:8000::/48",  # AS112 direct delegation (RFC 7534)
    "5f00::/16",  # SRv6 segment identifiers (RFC 9602)
))
_V6_SIX_TO_FOUR = IPv6Network("2002::/16")  # RFC 3056: the IPv4 address inside decides
_V6_NAT64 = IPv6Network("64:ff9b::/96")  # RFC 6052: DNS64 answers for IPv4-only hosts; the IPv4 inside decides
_MAX_IPV4 = 2**32 - 1


def host_address(host: str) -> Address | None:
    """The IP address a URL host names, in any spelling a browser or resolver accepts; None for a DNS name.

    Raises ``ValueError`` for a host that ends in a number but is no IPv4 address (``1.2.3.999``): browsers
    refuse such a host, and a resolver might still read it as an address.
    """
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        return IPv6Address(text)
    if not _ends_in_number(text):
        return None
    return IPv4Address(_ipv4_value(text))


def is_public(address: str | Address) -> bool:
    """A globally routable unicast address (see the module's notes); False for a name or anything unreadable."""
    if isinstance(address, str):
        try:
            parsed = host_address(address)
        except ValueError:
            return False
        if parsed is None:
            return False
        address = parsed
    if isinstance(address, IPv4Address):
        return not any(address in block for block in _V4_NOT_PUBLIC)
    if address in _V6_NAT64 or address in _V6_SIX_TO_FOUR:
        embedded = address.sixtofour or IPv4Address(int(address) & _MAX_IPV4)
        return is_public(embedded)
    return address in _V6_GLOBAL_UNICAST and not any(address in block for block in _V6_NOT_PUBLIC)


# --- the WHATWG URL Standard's IPv4 parser (https://url.spec.whatwg.org/#concept-ipv4-parser) -----------

def _parts(text: str) -> list[str]:
    parts = text.split(".")
    if len(parts) > 1 and parts[-1] == "":  # one trailing dot is allowed: "127.0.0.1."
        parts.pop()
    return parts


def _ends_in_number(text: str) -> bool:
    last = _parts(text)[-1]
    if last.isascii() and last.isdigit():
        return True
    try:
        _number(last)
    except ValueError:
        return False
    return True


def _number(part: str) -> int:
    """One part: decimal, octal with a leading 0, or hexadecimal with 0x; raises ValueError."""
    if part == "":
        raise ValueError("an empty part of an IPv4 address")
    radix, digits = 10, part
    if part[:2].lower() == "0x":
        radix, digits = 16, part[2:]
    elif len(part) > 1 and part[0] == "0":
        radix, digits = 8, part[1:]
    if digits == "":
        return 0
    if not digits.isascii() or not digits.isalnum():
        raise ValueError(f"{part!r} is not a number")
    return int(digits, radix)  # raises ValueError for a digit outside the radix


def _ipv4_value(text: str) -> int:
    """``a.b.c.d``, ``a.b.c`` (c fills 16 bits), ``a.b`` (b fills 24) or ``a`` (32 bits), as inet_aton reads them."""
    parts = _parts(text)
    if len(parts) > 4:
        raise ValueError(f"{text!r} has more than four parts")
    numbers = [_number(part) for part in parts]
    if any(n > 255 for n in numbers[:-1]):
        raise ValueError(f"{text!r} has a part over 255")
    if numbers[-1] >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{text!r} is out of range")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number * 256 ** (3 - index)
    return value
