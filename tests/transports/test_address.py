"""Transport addresses: canonical ``IP:port`` text, every refusal typed."""

from __future__ import annotations

import pytest

from l2session.errors import ConfigError
from l2session.transports.address import InvalidAddress, format_address, parse_address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7000", ("127.0.0.1", 7000)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
        ("10.1.2.3:65535", ("10.1.2.3", 65535)),
        ("[::1]:7000", ("::1", 7000)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("[2001:0db8:0000::0001]:443", ("2001:db8::1", 443)),  # compressed
        ("127.0.0.1:00080", ("127.0.0.1", 80)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    ("host", "port", "text"),
    [
        ("127.0.0.1", 7000, "127.0.0.1:7000"),
        ("::1", 7000, "[::1]:7000"),
        ("2001:0db8::0001", 1, "[2001:db8::1]:1"),
        ("0.0.0.0", 0, "0.0.0.0:0"),
    ],
)
def test_format_address(host: str, port: int, text: str) -> None:
    assert format_address(host, port) == text


@pytest.mark.parametrize(
    "text", ["127.0.0.1:7000", "[::1]:7000", "[2001:db8::1]:65535", "192.168.0.1:1"]
)
def test_round_trip_of_canonical_text(text: str) -> None:
    assert format_address(*parse_address(text)) == text


def test_port_zero_only_when_allowed() -> None:
    with pytest.raises(InvalidAddress, match="1-65535"):
        parse_address("127.0.0.1:0")
    assert parse_address("127.0.0.1:0", allow_zero_port=True) == ("127.0.0.1", 0)
    assert parse_address("[::]:0", allow_zero_port=True) == ("::", 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[::1]7000", "written \\[addr\\]:port"),
        ("[::1", "written \\[addr\\]:port"),
        ("[::1]", "written \\[addr\\]:port"),
        ("127.0.0.1", "expected IP:port"),
        (":7000", "expected IP:port"),
        ("", "expected IP:port"),
        ("::1:7000", "in brackets"),
        ("2001:db8::1:443", "in brackets"),
        ("localhost:7000", "not an IP address"),
        ("example.org:443", "not an IP address"),
        ("256.0.0.1:80", "not an IP address"),
        ("[not-ip]:80", "not an IP address"),
        ("[]:80", "not an IP address"),
        ("127.0.0.1:", "a number 0-65535"),
        ("127.0.0.1:http", "a number 0-65535"),
        ("127.0.0.1:-1", "a number 0-65535"),
        ("127.0.0.1:+80", "a number 0-65535"),
        ("127.0.0.1: 80", "a number 0-65535"),
        ("127.0.0.1:123456", "a number 0-65535"),
        ("127.0.0.1:²", "a number 0-65535"),  # isdigit() but not a port
        ("127.0.0.1:٣", "a number 0-65535"),  # int() would read it as 3
        ("127.0.0.1:65536", "1-65535"),
        ("127.0.0.1:99999", "1-65535"),
        ("[::1]:70000", "1-65535"),
    ],
)
def test_refusals_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(InvalidAddress, match=message):
        parse_address(text)


@pytest.mark.parametrize("value", [None, 7000, b"127.0.0.1:7000", ("127.0.0.1", 7000)])
def test_non_text_is_refused(value: object) -> None:
    with pytest.raises(InvalidAddress, match="must be text"):
        parse_address(value)  # type: ignore[arg-type]


def test_invalid_address_is_a_config_error() -> None:
    assert issubclass(InvalidAddress, ConfigError)
    assert issubclass(InvalidAddress, ValueError)


def test_format_refuses_a_name() -> None:
    with pytest.raises(ValueError, match="does not appear to be"):
        format_address("localhost", 80)
