"""Base58btc, the Bitcoin-alphabet base-58 encoding, written out by hand.

Why here and not a dependency: ``did:key`` identifiers and the
``publicKeyBase58`` / ``publicKeyMultibase`` fields of DID documents are the
only users, the algorithm is twenty lines, and a strict decoder is easier to
audit than a package that accepts whitespace or other alphabets.

The encoding maps each leading zero byte to one ``"1"`` and the rest of the
input, read as a big-endian integer, to base-58 digits.  That makes it a
bijection between byte strings and strings over the alphabet: every valid
string has exactly one byte string and re-encodes to itself.  Callers that
want a belt-and-braces canonical check can still compare
``encode(decode(s)) == s``.

Decoding is quadratic in the input length (Python big-int conversion), so
callers bound what they feed it; identifiers and keys are at most a few
hundred characters.
"""

from __future__ import annotations

from typing import Final

from l2session.errors import MalformedMessage

ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX: Final = {char: value for value, char in enumerate(ALPHABET)}


def encode(data: bytes) -> str:
    """Base58btc text of ``data`` (``""`` for empty input).

    Leading zero bytes become leading ``"1"`` characters, so keys that start
    with zero bytes keep their length through a round trip.
    """
    raw = bytes(data)
    zeros = len(raw) - len(raw.lstrip(b"\0"))
    number = int.from_bytes(raw, "big")
    digits: list[str] = []
    while number:
        number, digit = divmod(number, 58)
        digits.append(ALPHABET[digit])
    return "1" * zeros + "".join(reversed(digits))


def decode(text: str) -> bytes:
    """The bytes encoded by ``text``, refusing anything outside the alphabet.

    Strict on purpose: no whitespace stripping, no look-alike characters
    (``0``, ``O``, ``I``, ``l`` are not in the alphabet), no empty input.
    Raises :class:`~l2session.errors.MalformedMessage`; callers convert it
    into the error of their layer (``InvalidDid``, ``DidResolutionError``).
    """
    if not isinstance(text, str):
        raise MalformedMessage(f"base58 input must be a str, got {type(text).__name__}")
    if not text:
        raise MalformedMessage("base58 input is empty")
    number = 0
    for position, char in enumerate(text):
        value = _INDEX.get(char)
        if value is None:
            raise MalformedMessage(
                f"character {char!r} at position {position} is not in the base58btc alphabet"
                + (" (0, O, I and l are excluded)" if char in "0OIl" else "")
            )
        number = number * 58 + value
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * zeros + body


def is_canonical(text: str) -> bool:
    """Whether ``text`` decodes and re-encodes to itself (see the module
    docstring: true for every string over the alphabet)."""
    try:
        return encode(decode(text)) == text
    except MalformedMessage:
        return False


__all__ = ["ALPHABET", "decode", "encode", "is_canonical"]
