"""Transport addresses: ``host:port`` text, parsed once with a clear error.

A node is reached at one address for every path: its QUIC endpoint listens
on the UDP port and its μTCP endpoint on the TCP port of the same number.
IPv6 hosts are bracketed (``[::1]:7000``).  Names are not resolved here (no
DNS in the session layer); pass a literal IP address.
"""

from __future__ import annotations

import ipaddress

from l2session.errors import ConfigError


class InvalidAddress(ConfigError):
    """An address is not ``IP:port`` (IPv6 in brackets) with a port 0-65535."""


def parse_address(text: str, *, allow_zero_port: bool = False) -> tuple[str, int]:
    """``"127.0.0.1:7000"`` -> ``("127.0.0.1", 7000)``; ``"[::1]:7000"`` ->
    ``("::1", 7000)``.  Raises :class:`InvalidAddress` naming what is wrong."""
    if not isinstance(text, str):
        raise InvalidAddress(f"an address must be text like 127.0.0.1:7000, got {text!r}")
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise InvalidAddress(f"{text!r}: an IPv6 address is written [addr]:port")
        host, port_text = text[1:end], text[end + 2 :]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise InvalidAddress(f"{text!r}: expected IP:port, for example 127.0.0.1:7000")
        if ":" in host:
            raise InvalidAddress(f"{text!r}: put an IPv6 address in brackets, [addr]:port")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise InvalidAddress(
            f"{text!r}: {host!r} is not an IP address (names are not resolved)"
        ) from None
    # isascii: str.isdigit() also accepts "²" (int() refuses it) and "٣" (int() reads 3).
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise InvalidAddress(f"{text!r}: the port must be a number 0-65535")
    port = int(port_text)
    if port > 65535 or (port == 0 and not allow_zero_port):
        raise InvalidAddress(f"{text!r}: the port must be 1-65535")
    return (str(ip), port)


def format_address(host: str, port: int) -> str:
    """The canonical text of ``(host, port)`` (IPv6 bracketed)."""
    ip = ipaddress.ip_address(host)
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
