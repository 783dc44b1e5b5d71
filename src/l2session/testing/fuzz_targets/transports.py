"""Fuzz targets of ``transports/`` and of peer addresses: stream
framing, discovery datagrams and their responder, relay packets and the
relay server, ``host:port`` addresses and ``did@address`` peers.

The handlers (``framing_stream``, ``relay_server``,
``discovery_responder``) check more than "no crash": a frame stream
re-encodes to what was fed, a relay answers only its source, and
discovery never amplifies an unvalidated source.
"""

from __future__ import annotations

import functools
from typing import Final, cast

from l2session.crypto import primitives
from l2session.crypto.rng import SeededRandom
from l2session.errors import ConfigError, InvalidDid, MalformedMessage
from l2session.runtime.directory import parse_peer
from l2session.testing.fuzz_targets._base import (
    _DID_TOKENS,
    _M,
    NOW,
    FuzzTarget,
    _constant,
    _decoder,
    _handler,
    _require,
    _text_decoder,
)
from l2session.testing.fuzz_targets._fixtures import _keys
from l2session.transports.address import InvalidAddress, format_address, parse_address
from l2session.transports.discovery_wire import (
    DIAL_REACHED,
    MAX_DATAGRAM,
    DialBack,
    DialJob,
    DialResult,
    DiscoveryResponder,
    Here,
    Probe,
    Reflex,
    WhoHas,
    decode_message,
)
from l2session.transports.framing import (
    HEADER,
    MAX_FRAME,
    FrameDecoder,
    decode_hello,
    encode_frame,
    encode_frames,
    encode_hello,
)
from l2session.transports.relay_server import RelayServer
from l2session.wire.relay import (
    CircuitEnd,
    Connect,
    ConnectOk,
    ConnectReject,
    RelayData,
    RelayPacket,
    Reserve,
    ReserveOk,
    ReserveReject,
    decode_relay,
    encode_relay,
    reserve_signed_bytes,
)


def _check_hello(data: bytes, port: object) -> None:
    _require(isinstance(port, int) and 0 <= port <= 0xFFFF, f"HELLO port {port!r}")
    _require(encode_hello(port) == encode_frame(data), "HELLO re-encodes to other bytes")  # type: ignore[arg-type]


#: Frame limits the stream target chooses from (its first input byte).
_FRAME_LIMITS: Final = (0, 1, 16, 255, 4096, MAX_FRAME)


def _frame_stream(data: bytes) -> bool:
    """FrameDecoder.feed over ``data[2:]`` in chunks of ``data[1] + 1``
    bytes, with the limit ``data[0]`` picks.  Every byte fed is either in a
    returned frame (re-encoding the frames gives the stream back) or still
    buffered, and what is buffered is less than one whole frame."""
    if len(data) < 2:
        return False
    limit = _FRAME_LIMITS[data[0] % len(_FRAME_LIMITS)]
    step = data[1] + 1
    stream = bytes(data[2:])
    decoder = FrameDecoder(limit)
    frames: list[bytes] = []
    try:
        for start in range(0, len(stream), step):
            frames.extend(decoder.feed(stream[start : start + step]))
    except MalformedMessage:
        return False
    consumed = len(stream) - decoder.buffered
    _require(encode_frames(frames) == stream[:consumed], "frames do not re-encode to the stream")
    # Left over: part of one frame, never a whole one (nor past the limit).
    _require(decoder.buffered < HEADER + limit, "decoder holds a whole frame back")
    _require(all(len(frame) <= limit for frame in frames), "a frame exceeds the limit")
    return True


def _frame_seeds() -> tuple[bytes, ...]:
    """``limit index, chunk size - 1`` and a stream (see :func:`_frame_stream`)."""
    stream = encode_frames([b"", b"one", bytes(300)])
    return (
        bytes((4, 0)) + stream,
        bytes((4, 7)) + stream,
        bytes((5, 255)) + encode_hello(7000) + stream,
        bytes((3, 2)) + encode_frames([b"x" * 255, b"y"]),
    )


def _check_discovery(data: bytes, message: object) -> None:
    encode = getattr(message, "encode", None)
    _require(callable(encode) and encode() == bytes(data), "discovery message re-encodes")


def _relay_seeds() -> tuple[bytes, ...]:
    nonce, circuit = bytes(range(16)), bytes(range(8))
    alice = _keys("alice").identity
    signed = reserve_signed_bytes(_RELAY_DID, alice.did_text, int(NOW * 1000), nonce)
    signature = primitives.ed25519_sign(alice.signing, signed)
    return (
        encode_relay(Reserve(int(NOW * 1000), nonce, alice.did_text, signature)),
        encode_relay(ReserveOk(nonce, 600, _DISCOVERY_SOURCE)),
        encode_relay(ReserveReject(nonce, 2)),
        encode_relay(Connect(nonce, alice.did_text)),
        encode_relay(ConnectOk(nonce, circuit, 1 << 30, 3600, _DISCOVERY_SOURCE)),
        encode_relay(ConnectReject(nonce, 6)),
        encode_relay(RelayData(circuit, b"\x01\x20" + bytes(40))),
        encode_relay(CircuitEnd(circuit, 8)),
    )


def _check_relay(data: bytes, message: object) -> None:
    _require(encode_relay(cast(RelayPacket, message)) == bytes(data), "relay packet re-encodes")


_RELAY_DID: Final = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
_RELAY_SOURCE: Final = ("198.51.100.7:4433", "quic")


def _relay_server(data: bytes) -> bool:
    """RelayServer.receive never raises and answers only its source (a
    stranger's bytes never reach anyone else)."""
    server = RelayServer(
        _RELAY_DID, lambda did: _keys("alice").identity.signing.public, SeededRandom("relay")
    )
    out = server.receive(data, _RELAY_SOURCE, NOW)
    _require(all(route == _RELAY_SOURCE for route, _ in out), "a relay answered someone else")
    return bool(out)


_DISCOVERY_SECRET: Final = bytes(range(32))
_DISCOVERY_SOURCE: Final = "198.51.100.7:4433"
_DISCOVERY_LISTEN: Final = "192.0.2.1:7000"


def _responder() -> DiscoveryResponder:
    return DiscoveryResponder(
        _DISCOVERY_SECRET, identity=_keys("bob").identity, listen_address=_DISCOVERY_LISTEN
    )


@functools.cache
def _discovery_seeds() -> tuple[bytes, ...]:
    nonce = bytes(range(16))
    bob = _keys("bob").identity
    cookie = _responder().cookie(_DISCOVERY_SOURCE, NOW)
    return (
        Probe.padded(nonce).encode(),
        Probe.padded(nonce, cookie).encode(),
        Reflex(nonce, _DISCOVERY_SOURCE, cookie).encode(),
        Reflex(nonce, "[2001:db8::1]:4433").encode(),
        WhoHas.padded(nonce, bob.did_text).encode(),
        WhoHas.padded(nonce, bob.did_text, cookie).encode(),
        Here.signed(bob, nonce, _DISCOVERY_LISTEN).encode(),
        DialBack(nonce, cookie, 7000).encode(),
        DialResult(nonce, DIAL_REACHED, _DISCOVERY_SOURCE).encode(),
    )


def _discovery_responder(data: bytes) -> bool:
    """DiscoveryResponder.receive never raises, counts each datagram once,
    and never answers an unvalidated source with more than it sent."""
    responder = _responder()
    answer = responder.receive(data, _DISCOVERY_SOURCE, NOW)
    stats = responder.stats
    counted = stats.answered + stats.refused + stats.malformed + stats.rate_limited + stats.ignored
    _require(counted == 1, f"one datagram counted {counted} times: {stats}")
    if isinstance(answer, DialJob):
        # Only a proven source is dialled, and only at its own IP.
        _require(stats.validated == 1, "a dial-back for an unvalidated source")
        _require(
            answer.address.rsplit(":", 1)[0] == _DISCOVERY_SOURCE.rsplit(":", 1)[0],
            "a dial-back to another host than the asker",
        )
        answer = answer.answer(DIAL_REACHED)
    if answer is not None:
        _require(len(answer) <= MAX_DATAGRAM, "discovery answer exceeds the datagram limit")
        _require(
            stats.validated == 1 or len(answer) <= len(data),
            "discovery amplifies an unvalidated source",
        )
    return answer is not None


def _check_address(data: bytes, value: object) -> None:
    assert isinstance(value, tuple)
    host, port = value
    _require(parse_address(format_address(host, port), allow_zero_port=True) == value, "address")


_ADDRESS_SEEDS: Final = (b"127.0.0.1:7000", b"[::1]:7000", b"[fe80::1%eth0]:443", b"0.0.0.0:0")


def _peer_seeds() -> tuple[bytes, ...]:
    return (f"{_keys('alice').identity.did_text}@192.0.2.1:7000".encode(),)


#: The targets of transports/ and of addresses.
TARGETS: Final[tuple[FuzzTarget, ...]] = (
    _decoder(
        "framing_hello",
        ("l2session.transports.framing:decode_hello",),
        decode_hello,
        _constant(encode_hello(7000)[HEADER:], encode_hello(0)[HEADER:]),
        _M,
        verify=_check_hello,
        max_len=64,
    ),
    _handler(
        "framing_stream",
        ("l2session.transports.framing:FrameDecoder.feed",),
        _frame_stream,
        _frame_seeds,
        _M,
    ),
    _decoder(
        "discovery_message",
        (
            "l2session.transports.discovery_messages:decode_message",
            "l2session.transports.discovery_messages:_decode",
        ),
        decode_message,
        _discovery_seeds,
        _M,
        verify=_check_discovery,
        max_len=2 * MAX_DATAGRAM,
    ),
    _decoder(
        "wire_relay",
        ("l2session.wire.relay:decode_relay", "l2session.wire.relay:_decode"),
        decode_relay,
        _relay_seeds,
        _M,
        verify=_check_relay,
        max_len=4096,
    ),
    _handler(
        "relay_server",
        ("l2session.transports.relay_server:RelayServer.receive",),
        _relay_server,
        _relay_seeds,
        (),
        max_len=4096,
    ),
    _handler(
        "discovery_responder",
        ("l2session.transports.discovery_wire:DiscoveryResponder.receive",),
        _discovery_responder,
        _discovery_seeds,
        (),
        max_len=2 * MAX_DATAGRAM,
    ),
    _text_decoder(
        "address",
        ("l2session.transports.address:parse_address",),
        lambda text: parse_address(text, allow_zero_port=True),
        _constant(*_ADDRESS_SEEDS),
        (InvalidAddress,),
        verify=_check_address,
        max_len=256,
        tokens=(b"[", b"]:", b"::", b"%", b"127.0.0.1", b":65535", b"::ffff:"),
    ),
    _text_decoder(
        "peer",
        ("l2session.runtime.directory:parse_peer",),
        parse_peer,
        _peer_seeds,
        (ConfigError, InvalidDid),
        max_len=1024,
        tokens=(*_DID_TOKENS, b"127.0.0.1:", b"[::1]:"),
    ),
)
