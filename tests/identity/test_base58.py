"""Base58btc: known answers, strict decoding, and round trips."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l2session.errors import MalformedMessage
from l2session.identity import base58


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"", ""),
        (b"\x00", "1"),
        (b"\x00\x00\x00", "111"),
        (b"\x39", "z"),
        (b"\x3a", "21"),
        (b"hello world", "StV1DL6CwTryKyV"),
        (b"\x00\x00\x28\x7f\xb4\xcd", "11233QC4"),
        (bytes.fromhex("0000287fb4cd"), "11233QC4"),
        (b"\xff" * 4, "7YXq9G"),
    ],
)
def test_known_answers(raw: bytes, text: str) -> None:
    assert base58.encode(raw) == text
    if text:
        assert base58.decode(text) == raw


@pytest.mark.parametrize("bad", ["0", "O", "I", "l", "abc0", " z", "z ", "z\n", "é", "+", "-"])
def test_characters_outside_the_alphabet_are_refused(bad: str) -> None:
    with pytest.raises(MalformedMessage, match="not in the base58btc alphabet"):
        base58.decode(bad)


def test_look_alike_characters_are_explained() -> None:
    with pytest.raises(MalformedMessage, match=r"0, O, I and l are excluded"):
        base58.decode("1O")


def test_empty_input_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="empty"):
        base58.decode("")


def test_non_string_input_is_refused() -> None:
    with pytest.raises(MalformedMessage, match="must be a str"):
        base58.decode(b"abc")  # type: ignore[arg-type]


def test_is_canonical() -> None:
    assert base58.is_canonical("11233QC4")
    assert not base58.is_canonical("")
    assert not base58.is_canonical("0")


@given(st.binary(max_size=80), st.integers(min_value=0, max_value=5))
def test_round_trip_keeps_leading_zero_bytes(data: bytes, zeros: int) -> None:
    raw = b"\0" * zeros + data
    text = base58.encode(raw)
    assert text.startswith("1" * zeros)
    if raw:
        assert base58.decode(text) == raw
        assert base58.is_canonical(text)


@given(st.text(alphabet=base58.ALPHABET, min_size=1, max_size=80))
def test_every_alphabet_string_is_canonical(text: str) -> None:
    assert base58.encode(base58.decode(text)) == text


@given(st.text(max_size=40))
def test_arbitrary_text_decodes_or_raises_malformed(text: str) -> None:
    with contextlib.suppress(MalformedMessage):
        base58.decode(text)
