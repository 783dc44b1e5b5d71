"""Foreign identities and bridge protocols: who a federated session talks to.

A federated session's peer is not a DID but an identity of another network
(the overview's ``ForeignIdentity``).  Nostr is the first: a peer is a
32-byte x-only secp256k1 public key, written ``npub1…`` (NIP-19 bech32),
as 64 hex digits, or, where a peer is named in text that also holds DIDs
(a policy, the CLI), ``nostr:npub1…`` (NIP-21).  :meth:`ForeignIdentity.text`
is always that last, canonical form, so one peer has one name in policies,
the audit chain and the store.

Pure: the bech32 codec (BIP-173) is a naming format, not cryptography, so
it lives here and the Membrane can check policy names without the Nostr
extra installed.  Keys are never validated as curve points here; the
bridge's library does that before it uses one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final

from l2session.errors import BridgeUnavailable, InvalidForeignIdentity

#: The URI scheme (NIP-21) that marks a Nostr peer in text.
NOSTR_SCHEME: Final = "nostr:"

_CHARSET: Final = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR: Final = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
#: Longest text accepted as a name (an npub is 63 characters).
MAX_NAME_LENGTH: Final = 100


def _polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i in range(5):
            chk ^= _GENERATOR[i] if (top >> i) & 1 else 0
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert(data: list[int], from_bits: int, to_bits: int, pad: bool) -> list[int] | None:
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & maxv)
    elif bits >= from_bits or ((acc << (to_bits - bits)) & maxv):
        return None
    return out


def bech32_encode(hrp: str, payload: bytes) -> str:
    """``payload`` as bech32 text with human-readable part ``hrp`` (BIP-173)."""
    data = _convert(list(payload), 8, 5, True) or []
    values = _hrp_expand(hrp) + data
    mod = _polymod([*values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(mod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[d] for d in data + checksum)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """``(hrp, payload)`` of bech32 ``text``; raises InvalidForeignIdentity."""
    if text.lower() != text and text.upper() != text:
        raise InvalidForeignIdentity(f"{text!r}: bech32 text must not mix upper and lower case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise InvalidForeignIdentity(f"{text!r} is not bech32 (no separator or too short)")
    hrp, rest = text[:pos], text[pos + 1 :]
    try:
        data = [_CHARSET.index(c) for c in rest]
    except ValueError:
        raise InvalidForeignIdentity(f"{text!r} has a character bech32 does not use") from None
    if _polymod(_hrp_expand(hrp) + data) != 1:
        raise InvalidForeignIdentity(f"{text!r}: bech32 checksum mismatch (a typo?)")
    payload = _convert(data[:-6], 5, 8, False)
    if payload is None:
        raise InvalidForeignIdentity(f"{text!r}: bech32 padding is invalid")
    return hrp, bytes(payload)


@dataclass(frozen=True, slots=True)
class BridgeProtocol:
    """The foreign protocol a federated session speaks (the overview's
    ``BridgeProtocol = Nostr | ActivityPub | Xmtp | Custom(String)``).

    ``name`` is ``"nostr"``, ``"activitypub"``, ``"xmtp"`` or, for a custom
    bridge found through the ``l2session.bridges`` entry points, its entry
    point name with ``custom`` True.
    """

    name: str
    custom: bool = False

    NOSTR: ClassVar[BridgeProtocol]
    ACTIVITYPUB: ClassVar[BridgeProtocol]
    XMTP: ClassVar[BridgeProtocol]

    def __post_init__(self) -> None:
        if not (
            isinstance(self.name, str)
            and 0 < len(self.name) <= 64
            and all(c.isascii() and (c.isalnum() or c in "-_.") for c in self.name)
        ):
            raise BridgeUnavailable(
                f"a bridge name is 1..64 ASCII letters, digits, '-', '_' or '.', got {self.name!r}"
            )
        if self.custom and self.name in _BUILTIN:
            raise BridgeUnavailable(f"{self.name!r} is a built-in bridge, not a custom one")

    @classmethod
    def Custom(cls, name: str) -> BridgeProtocol:  # noqa: N802 - the overview's name
        """A custom bridge provided by the entry point ``name`` of ``l2session.bridges``."""
        return cls(name, custom=True)

    @classmethod
    def parse(cls, text: str) -> BridgeProtocol:
        """``"nostr"``, ``"activitypub"``, ``"xmtp"`` or ``"custom:NAME"``."""
        lowered = text.strip().lower()
        if lowered in _BUILTIN:
            return cls(lowered)
        if lowered.startswith("custom:"):
            return cls.Custom(text.strip()[len("custom:") :])
        raise BridgeUnavailable(
            f"unknown bridge {text!r}: expected nostr, activitypub, xmtp or custom:NAME"
        )

    def __str__(self) -> str:
        return f"custom:{self.name}" if self.custom else self.name


_BUILTIN: Final = frozenset({"nostr", "activitypub", "xmtp"})
BridgeProtocol.NOSTR = BridgeProtocol("nostr")
BridgeProtocol.ACTIVITYPUB = BridgeProtocol("activitypub")
BridgeProtocol.XMTP = BridgeProtocol("xmtp")


@dataclass(frozen=True, slots=True)
class ForeignIdentity:
    """A peer on another network: ``protocol`` and its ``key`` there.

    For Nostr ``key`` is the 32-byte x-only public key.  A custom bridge's
    identities carry the bridge's own name as ``key`` (UTF-8 bytes) and are
    written ``custom:NAME:ID``.
    """

    protocol: BridgeProtocol
    key: bytes

    def __post_init__(self) -> None:
        if self.protocol == BridgeProtocol.NOSTR and len(self.key) != 32:
            raise InvalidForeignIdentity(f"a Nostr public key is 32 bytes, got {len(self.key)}")
        if not self.key:
            raise InvalidForeignIdentity("a foreign identity needs a non-empty key")

    @classmethod
    def nostr(cls, text: str) -> ForeignIdentity:
        """A Nostr peer from ``nostr:npub1…``, ``npub1…`` or 64 hex digits."""
        if not isinstance(text, str) or len(text) > MAX_NAME_LENGTH:
            raise InvalidForeignIdentity(f"not a Nostr public key: {text!r:.120}")
        value = text.strip()
        if value.lower().startswith(NOSTR_SCHEME):
            value = value[len(NOSTR_SCHEME) :]
        if len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value):
            return cls(BridgeProtocol.NOSTR, bytes.fromhex(value))
        if not value.lower().startswith("npub1"):
            raise InvalidForeignIdentity(
                f"{text!r} is not a Nostr public key: expected nostr:npub1…, npub1… "
                "or 64 hex digits (an nsec is a secret key: never share it)"
            )
        hrp, key = bech32_decode(value)
        if hrp != "npub":
            raise InvalidForeignIdentity(f"{text!r}: expected an npub, got {hrp!r}")
        return cls(BridgeProtocol.NOSTR, key)

    @classmethod
    def parse(cls, text: str) -> ForeignIdentity:
        """A foreign peer named in text: ``nostr:…``/``npub1…``/hex (Nostr)
        or ``custom:NAME:ID`` (a custom bridge's peer)."""
        if isinstance(text, str) and text.startswith("custom:"):
            _, _, rest = text.partition(":")
            name, sep, ident = rest.partition(":")
            if not sep or not ident or len(text) > MAX_NAME_LENGTH:
                raise InvalidForeignIdentity(
                    f"{text!r}: a custom bridge's peer is written custom:NAME:ID"
                )
            try:
                protocol = BridgeProtocol.Custom(name)
            except BridgeUnavailable as exc:
                raise InvalidForeignIdentity(str(exc)) from None
            if not (ident.isascii() and ident.isprintable()):
                raise InvalidForeignIdentity(
                    f"{text!r}: a custom bridge's peer id is printable ASCII"
                )
            return cls(protocol, ident.encode())
        return cls.nostr(text)

    @property
    def npub(self) -> str:
        """The NIP-19 form (Nostr peers only)."""
        return bech32_encode("npub", self.key)

    @property
    def hex(self) -> str:
        return self.key.hex()

    @property
    def text(self) -> str:
        """The canonical name: ``nostr:npub1…`` or ``custom:NAME:ID``."""
        if self.protocol == BridgeProtocol.NOSTR:
            return NOSTR_SCHEME + self.npub
        return f"custom:{self.protocol.name}:{self.key.decode()}"

    def __str__(self) -> str:
        return self.text


def is_foreign(text: object) -> bool:
    """Whether ``text`` names a foreign peer (rather than a DID)."""
    return isinstance(text, str) and (text.startswith((NOSTR_SCHEME, "npub1", "custom:")))


def foreign_problem(text: str) -> str | None:
    """Why ``text`` is not a foreign peer name (None when it is)."""
    try:
        ForeignIdentity.parse(text)
    except InvalidForeignIdentity as exc:
        return str(exc)
    return None
