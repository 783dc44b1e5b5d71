"""What every fuzz target module shares: the registry's record
(:class:`FuzzTarget`), the finding type (:class:`PropertyViolation`), the
fixed time and prekey policy, and the constructors the per-layer modules
build their targets with.

Kept apart from the per-layer modules so that each of them imports only
this and :mod:`._fixtures`, never the package that collects them (no
import cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from l2session.errors import L2SessionError, MalformedMessage
from l2session.identity.prekeys import PrekeyPolicy

#: Wall-clock time of every target (2027-01-15T08:00:00Z, as the tests).
NOW: Final = 1_800_000_000.0
#: Small prekey pools: a party costs one signature per one-time prekey.
POLICY: Final = PrekeyPolicy(one_time_pool_size=3, one_time_refill_threshold=1)


class PropertyViolation(AssertionError):
    """A decoder accepted an input it should have refused, re-encoded it to
    other bytes, or a refused input changed the state of its handler."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise PropertyViolation(message)


def as_text(data: bytes) -> str:
    """The text a ``str`` decoder is fed (see the module docstring)."""
    return data.decode("utf-8", "surrogateescape")


@dataclass(frozen=True, slots=True)
class FuzzTarget:
    """One fuzz target (see the module docstring)."""

    name: str
    #: ``module:qualname`` of each decoder this target drives; the first
    #: names the target's main entry point.
    entries: tuple[str, ...]
    #: Feeds one input; True if the decoder accepted it, False if it
    #: refused it with one of ``refuses``; any exception is a finding.
    check: Callable[[bytes], bool] = field(repr=False)
    seeds: Callable[[], tuple[bytes, ...]] = field(repr=False)
    #: The typed errors that mean "refused" (everything else is a finding).
    refuses: tuple[type[L2SessionError], ...]
    #: Whether the decoder takes text (fed through :func:`as_text`).
    text: bool = False
    #: Largest useful input (libFuzzer's ``-max_len``, Hypothesis's sizes).
    max_len: int = 4096
    #: Relative cost of one run: the Hypothesis tests give costly targets
    #: fewer examples so that the whole suite stays fast.
    cost: int = 1
    #: Keywords of the input's grammar (libFuzzer's ``-dict``).
    tokens: tuple[bytes, ...] = ()

    @property
    def module(self) -> str:
        return self.entries[0].split(":", 1)[0]

    def run(self, data: bytes) -> None:
        """The fuzzing entry point (atheris's ``TestOneInput``)."""
        self.check(data)


def _check_encoding(data: bytes, value: object) -> None:
    encode = getattr(value, "encode", None)
    _require(callable(encode) and encode() == bytes(data), "re-encodes to other bytes")


def _refusing(
    decode: Callable[[bytes], object],
    refuses: tuple[type[L2SessionError], ...],
    check: Callable[[bytes, object], None] | None = None,
) -> Callable[[bytes], bool]:
    """``check`` for a pure decoder: refusals pass, accepted values are checked."""

    def run(data: bytes) -> bool:
        try:
            value = decode(data)
        except refuses:
            return False
        if check is not None:
            check(data, value)
        return True

    return run


def _decoder(
    name: str,
    entries: tuple[str, ...],
    decode: Callable[[bytes], object],
    seeds: Callable[[], tuple[bytes, ...]],
    refuses: tuple[type[L2SessionError], ...],
    *,
    verify: Callable[[bytes, object], None] | None = None,
    text: bool = False,
    max_len: int = 4096,
    cost: int = 1,
    tokens: tuple[bytes, ...] = (),
) -> FuzzTarget:
    """A pure decoder: ``refuses`` pass, ``verify`` checks what is accepted."""
    check = _refusing(decode, refuses, verify)
    return FuzzTarget(name, entries, check, seeds, refuses, text, max_len, cost, tokens)


def _text_decoder(
    name: str,
    entries: tuple[str, ...],
    decode: Callable[[str], object],
    seeds: Callable[[], tuple[bytes, ...]],
    refuses: tuple[type[L2SessionError], ...],
    *,
    verify: Callable[[bytes, object], None] | None = None,
    max_len: int = 4096,
    cost: int = 1,
    tokens: tuple[bytes, ...] = (),
) -> FuzzTarget:
    """A decoder of text, fed :func:`as_text` of the input."""
    return _decoder(
        name,
        entries,
        lambda data: decode(as_text(data)),
        seeds,
        refuses,
        verify=verify,
        text=True,
        max_len=max_len,
        cost=cost,
        tokens=tokens,
    )


def _handler(
    name: str,
    entries: tuple[str, ...],
    check: Callable[[bytes], bool],
    seeds: Callable[[], tuple[bytes, ...]],
    refuses: tuple[type[L2SessionError], ...],
    *,
    max_len: int = 4096,
    cost: int = 1,
) -> FuzzTarget:
    """A handler: ``check`` catches ``refuses`` itself, to compare its state
    before and after a refusal, and returns whether the input was accepted."""
    return FuzzTarget(name, entries, check, seeds, refuses, False, max_len, cost)


def _constant(*seeds: bytes) -> Callable[[], tuple[bytes, ...]]:
    return lambda: seeds


_M: Final = (MalformedMessage,)

_DID_TOKENS: Final = (b"did:", b"key:", b"web:", b"z6Mk", b"z6LS", b"%41", b":", b"@")
_JSON_TOKENS: Final = (b'"', b"{", b"}", b"[", b"]", b":", b",", b"null", b"true", b"\\u")
