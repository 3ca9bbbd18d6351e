"""One reading of IP addresses for registration and send time: every spelling of an internal address is refused."""

from __future__ import annotations

import socket
from ipaddress import IPv4Address

import pytest

from clarion.channels.webhook import check_url, resolve
from clarion.domain.errors import FieldError
from clarion.domain.network import host_address, is_public
from clarion.services.devices import check_endpoint

# (spelling, the address inet_aton and browsers read it as)
LOOPBACK_SPELLINGS = [
    ("127.1", "127.0.0.1"),  # a.b: b fills the last 24 bits
    ("127.0.1", "127.0.0.1"),  # a.b.c: c fills the last 16 bits
    ("0177.0.0.1", "127.0.0.1"),  # octal
    ("0x7f.1", "127.0.0.1"),  # hexadecimal
    ("0X7F.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),  # one 32-bit number
    ("0x7f000001", "127.0.0.1"),
    ("017700000001", "127.0.0.1"),
    ("0251.0376.0251.0376", "169.254.169.254"),  # the metadata address, octal
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
    ("3232235777", "192.168.1.1"),
]


@pytest.mark.parametrize(("spelling", "address"), LOOPBACK_SPELLINGS)
def test_inet_aton_spellings_are_read_as_the_c_library_reads_them(spelling, address):
    # when a host is read
    parsed = host_address(spelling)
    # then it is the address the resolver will connect to, and it is not public
    assert parsed == IPv4Address(address) == IPv4Address(socket.inet_aton(spelling))
    assert is_public(spelling) is False


@pytest.mark.parametrize("host", ["1.2.3.999", "foo.123", "1.2.3.4.5", "08.1.1.1", "256.1.1.1", "0x1.0x100.1.1"])
def test_a_host_ending_in_a_number_that_is_no_address_is_invalid(host):
    # then it is neither a name nor an address (browsers refuse it), and never public
    with pytest.raises(ValueError):
        host_address(host)
    assert is_public(host) is False


@pytest.mark.parametrize("host", ["example.com", "push.example", "xn--bcher-kva.example", "a1b2.example"])
def test_names_are_names(host):
    assert host_address(host) is None


@pytest.mark.parametrize("address", [
    "192.0.0.192", "192.0.0.9", "192.0.0.170",  # IETF protocol assignments, where clouds answer metadata
    "0.0.0.0", "0.1.2.3", "10.0.0.1", "100.64.0.1", "127.0.0.1", "169.254.169.254", "172.16.0.1", "192.168.0.1",
    "192.0.2.1", "198.51.100.7", "203.0.113.9", "198.18.0.1", "192.88.99.1", "192.31.196.1", "192.52.193.1",
    "192.175.48.1", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::", "::1", "::ffff:8.8.8.8", "::ffff:127.0.0.1", "::127.0.0.1", "fe80::1", "fe80::1%eth0", "fc00::1",
    "fd12:3456::1", "fec0::1", "ff02::1", "100::1", "2001:db8::1", "2001::1", "2001:2::1", "3fff::1",
    "5f00::1", "2620:4f:8000::1", "64:ff9b::7f00:1", "64:ff9b:1::1", "2002:7f00:1::", "2002:a00:1::",
])
def test_special_purpose_addresses_are_not_public(address):
    assert is_public(address) is False


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "192.0.1.1", "192.0.3.1", "2001:4860:4860::8888",
                                     "2a00:1450:4001::1", "2002:808:808::1", "64:ff9b::808:808"])
def test_global_unicast_addresses_are_public(address):
    assert is_public(address) is True


@pytest.mark.parametrize(("spelling", "address"), LOOPBACK_SPELLINGS)
def test_registration_refuses_every_spelling_of_an_internal_address(spelling, address):
    # when a browser's subscription names the address in another spelling
    with pytest.raises(FieldError) as refused:
        check_endpoint(f"https://{spelling}/wpush/v2/x")
    # then it is refused as internal
    assert "internal" in refused.value.reason


@pytest.mark.parametrize(("spelling", "address"), LOOPBACK_SPELLINGS)
def test_send_time_reads_the_same_address_as_registration(spelling, address):
    # when the send-time check takes the URL apart and resolves its host
    target = check_url(f"https://{spelling}/hook")
    # then it calls the same address registration saw (no DNS involved), which is not public
    assert resolve(target.hostname, target.port) == [address]
    assert not is_public(resolve(target.hostname, target.port)[0])


@pytest.mark.parametrize("endpoint", ["https://1.2.3.999/x", "https://[::1/x"])
def test_registration_refuses_a_host_that_is_no_valid_name_or_address(endpoint):
    with pytest.raises(FieldError, match="not a valid name or address"):
        check_endpoint(endpoint)


def test_a_public_push_service_is_still_accepted():
    check_endpoint("https://updates.push.services.mozilla.com/wpush/v2/abc")
    check_endpoint("https://8.8.8.8/wpush/v2/abc")
