"""Discovery messages and the pure responder: round trips, hostile bytes
(MalformedMessage only), anti-amplification, cookies, rate limits and the
bounded source table -- all on a manual clock, no sockets."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2session.crypto.rng import SeededRandom
from l2session.errors import (
    AuthenticationFailed,
    ConfigError,
    MalformedMessage,
    MessageTooLarge,
)
from l2session.identity.identity import Identity
from l2session.testing.fuzz import mutate
from l2session.transports.address import format_address
from l2session.transports.discovery_wire import (
    COOKIE_SIZE,
    DIAL_BUSY,
    DIAL_REACHED,
    DIAL_UNREACHABLE,
    MAGIC,
    MAX_ADDRESS_BYTES,
    MAX_DATAGRAM,
    MAX_DID_BYTES,
    MAX_REFLEX_SIZE,
    NONCE_SIZE,
    DialBack,
    DialJob,
    DialResult,
    DiscoveryLimits,
    DiscoveryResponder,
    Here,
    Message,
    Probe,
    Reflex,
    WhoHas,
    decode_message,
    here_size_bound,
)

SECRET = bytes(range(32))
NONCE = bytes(range(NONCE_SIZE))
IDENTITY = Identity.generate(SeededRandom("discovery node"))
OTHER = Identity.generate(SeededRandom("someone else"))
LISTEN = "192.0.2.7:7000"
SOURCE = "198.51.100.9:40000"
#: Limits that never rate-limit (for tests about other rules).
UNLIMITED = DiscoveryLimits(source_burst=1e9, global_burst=1e9)

nonces = st.binary(min_size=NONCE_SIZE, max_size=NONCE_SIZE)
cookies = st.one_of(st.just(b""), st.binary(min_size=COOKIE_SIZE, max_size=COOKIE_SIZE))
signatures = st.one_of(st.just(b""), st.binary(min_size=64, max_size=64))
paddings = st.integers(0, 300)
addresses = st.builds(
    lambda ip, port: format_address(str(ip), port), st.ip_addresses(), st.integers(1, 65535)
)
_ID_CHARS = string.ascii_letters + string.digits + ".-_"
dids = st.builds(
    lambda method, ident: f"did:{method}:{ident}",
    st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10),
    st.text(_ID_CHARS, min_size=1, max_size=MAX_DID_BYTES - 15),
)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Probe, nonces, cookies, paddings),
    st.builds(Reflex, nonces, addresses, cookies),
    st.builds(WhoHas, nonces, dids, cookies, paddings),
    st.builds(Here, nonces, dids, addresses, signatures),
    st.builds(
        DialBack,
        nonces,
        st.binary(min_size=COOKIE_SIZE, max_size=COOKIE_SIZE),
        st.integers(1, 65535),
    ),
    st.builds(
        DialResult, nonces, st.sampled_from([DIAL_REACHED, DIAL_UNREACHABLE, DIAL_BUSY]), addresses
    ),
)


def responder(limits: DiscoveryLimits = UNLIMITED) -> DiscoveryResponder:
    return DiscoveryResponder(SECRET, identity=IDENTITY, listen_address=LISTEN, limits=limits)


# ----------------------------------------------------------------- codecs


@given(messages)
def test_every_message_round_trips(message: Message) -> None:
    data = message.encode()
    assert len(data) <= MAX_DATAGRAM
    assert data.startswith(MAGIC)
    assert decode_message(data) == message


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid encoding with bit flips, insertions, deletions, truncation."""
    return mutate(draw, draw(messages).encode())


@settings(max_examples=300)
@given(mutated())
def test_mutations_raise_malformed_or_decode_canonically(damaged: bytes) -> None:
    try:
        decoded = decode_message(damaged)
    except MalformedMessage:
        return
    assert decoded.encode() == damaged  # one encoding per message


@given(messages, st.data())
def test_truncation_and_trailing_bytes_are_malformed(message: Message, data: st.DataObject) -> None:
    encoded = message.encode()
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(MalformedMessage):
        decode_message(encoded[:cut])
    with pytest.raises(MalformedMessage):
        decode_message(encoded + data.draw(st.binary(min_size=1, max_size=8)))


@given(st.binary(max_size=2 * MAX_DATAGRAM))
def test_random_bytes_raise_only_malformed(data: bytes) -> None:
    for candidate in (data, MAGIC + b"\x01" + data):
        try:
            decoded = decode_message(candidate)
        except MalformedMessage:
            continue
        assert decoded.encode() == candidate


@given(st.text(max_size=70), st.text(max_size=70))
def test_arbitrary_text_fields_raise_only_malformed(address: str, did: str) -> None:
    raw_address, raw_did = address.encode()[:64] or b"x", did.encode()[:255] or b"x"
    reflex = MAGIC + b"\x01\x02" + NONCE + bytes([len(raw_address)]) + raw_address + b"\x00"
    here = (
        MAGIC
        + b"\x01\x04"
        + NONCE
        + bytes([len(raw_did)])
        + raw_did
        + bytes([len(raw_address)])
        + raw_address
        + b"\x00"
    )
    for data in (reflex, here):
        try:
            decoded = decode_message(data)
        except MalformedMessage:
            continue
        assert decoded.encode() == data


DAMAGE: list[tuple[bytes, str]] = [
    (b"XXXX" + Probe(NONCE).encode()[4:], "magic"),
    (MAGIC + b"\x02\x01" + Probe(NONCE).encode()[6:], "version"),
    (MAGIC + b"\x01\x09" + Probe(NONCE).encode()[6:], "unknown message type"),
    (Probe(NONCE, padding=2).encode()[:-1] + b"\x01", "padding"),
    (Probe(NONCE).encode() + bytes(MAX_DATAGRAM), "exceeds"),
    (Reflex(NONCE, "[::a]:80").encode().replace(b"[::a]", b"[::A]"), "not canonical"),
    (Reflex(NONCE, "10.0.0.1:80").encode().replace(b"10.0.0.1", b"10.0.0.x"), "IP address"),
    (WhoHas(NONCE, "did:ab:c").encode().replace(b"did:ab:c", b"did:AB:c"), "lowercase"),
    (Reflex(NONCE, "10.0.0.1:80").encode()[:-1] + b"\x05", "cookie length"),
    (Here(NONCE, "did:a:b", "10.0.0.1:80").encode()[:-1] + b"\x20", "signature length"),
    (WhoHas(NONCE, "did:a:b").encode().replace(b"did:a:b", b"did:a:\xff"), "UTF-8"),
]


@pytest.mark.parametrize(("data", "reason"), DAMAGE, ids=[reason for _, reason in DAMAGE])
def test_specific_damage_is_named(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        decode_message(data)


def test_local_mistakes_are_refused_when_encoding() -> None:
    with pytest.raises(ConfigError, match="nonce"):
        Probe(b"short")
    with pytest.raises(ConfigError, match="cookie"):
        Probe(NONCE, cookie=b"x")
    with pytest.raises(MessageTooLarge):
        Probe(NONCE, padding=MAX_DATAGRAM + 1)
    with pytest.raises(MessageTooLarge):
        Probe(NONCE, padding=MAX_DATAGRAM).encode()
    with pytest.raises(MessageTooLarge, match="DID"):
        WhoHas(NONCE, "did:a:" + "b" * MAX_DID_BYTES)
    with pytest.raises(MessageTooLarge, match="address"):
        Reflex(NONCE, "[fe80::1%" + "e" * MAX_ADDRESS_BYTES + "]:1")
    with pytest.raises(ConfigError, match="canonical"):
        Here(NONCE, "did:a:b", "[::A]:80")


@given(nonces, cookies, dids)
def test_padded_requests_fit_the_largest_answer(nonce: bytes, cookie: bytes, did: str) -> None:
    assert len(Probe.padded(nonce, cookie).encode()) == MAX_REFLEX_SIZE
    widest = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
    assert len(Reflex(nonce, widest, bytes(COOKIE_SIZE)).encode()) <= MAX_REFLEX_SIZE
    assert len(WhoHas.padded(nonce, did, cookie).encode()) == here_size_bound(did)
    assert len(Here(nonce, did, widest, bytes(64)).encode()) <= here_size_bound(did)


def test_here_signature_binds_nonce_did_and_address() -> None:
    here = Here.signed(IDENTITY, NONCE, LISTEN)
    here.verify(IDENTITY.signing_public)
    for forged in (
        Here(bytes(NONCE_SIZE), here.did, here.address, here.signature),
        Here(NONCE, here.did, "192.0.2.66:7000", here.signature),
        Here(NONCE, OTHER.did_text, here.address, here.signature),
        Here(NONCE, here.did, here.address),
    ):
        with pytest.raises(AuthenticationFailed):
            forged.verify(IDENTITY.signing_public)
    with pytest.raises(AuthenticationFailed):
        here.verify(OTHER.signing_public)


# --------------------------------------------------------- anti-amplification

requests = st.one_of(
    st.builds(Probe, nonces, cookies, paddings),
    st.builds(WhoHas, nonces, st.one_of(st.just(IDENTITY.did_text), dids), cookies, paddings),
).map(lambda m: m.encode())


@settings(max_examples=300)
@given(st.one_of(requests, st.binary(max_size=400)), addresses, st.floats(0, 1e9))
def test_an_unvalidated_answer_is_never_larger_than_its_request(
    request: bytes, source: str, now: float
) -> None:
    answer = responder().handle(request, source, now)
    assert answer is None or len(answer) <= len(request)


def test_padded_requests_are_answered_and_answers_verify() -> None:
    node = responder()
    reflex = decode_message(node.handle(Probe.padded(NONCE).encode(), SOURCE, 0.0) or b"")
    assert isinstance(reflex, Reflex)
    assert (reflex.nonce, reflex.observed) == (NONCE, SOURCE)
    assert node.cookie_valid(reflex.cookie, SOURCE, 0.0)
    request = WhoHas.padded(NONCE, IDENTITY.did_text).encode()
    here = decode_message(node.handle(request, SOURCE, 0.0) or b"")
    assert isinstance(here, Here)
    assert (here.did, here.address) == (IDENTITY.did_text, LISTEN)
    here.verify(IDENTITY.signing_public)
    assert (node.stats.answered, node.stats.refused, node.stats.validated) == (2, 0, 0)


def test_too_small_requests_are_refused_or_truncated() -> None:
    node = responder()
    assert node.handle(Probe(NONCE).encode(), SOURCE, 0.0) is None
    assert node.handle(WhoHas(NONCE, IDENTITY.did_text).encode(), SOURCE, 0.0) is None
    assert node.stats.refused == 2
    # Room for the address but not the cookie: the cookie is dropped.
    small = Probe(NONCE, padding=20).encode()
    answer = node.handle(small, SOURCE, 0.0)
    assert answer is not None
    assert len(answer) <= len(small)
    reflex = decode_message(answer)
    assert isinstance(reflex, Reflex)
    assert reflex.cookie == b""


# ------------------------------------------------------------------ cookies


def test_a_cookie_validates_its_address_for_one_to_two_periods() -> None:
    node = responder(DiscoveryLimits(source_burst=1e9, global_burst=1e9, cookie_period=60.0))
    cookie = node.cookie(SOURCE, 100.0)  # bucket 1: [60, 120)
    small = Probe(NONCE, cookie).encode()
    assert len(small) < MAX_REFLEX_SIZE
    answer = node.handle(small, SOURCE, 179.0)  # bucket 2: still valid
    assert answer is not None
    assert len(answer) > len(small)  # a validated source may get more
    assert node.stats.validated == 1
    assert node.handle(small, SOURCE, 180.0) is None  # bucket 3: expired
    assert node.handle(small, "198.51.100.9:40001", 100.0) is None  # another address
    assert node.handle(Probe(NONCE, bytes(COOKIE_SIZE)).encode(), SOURCE, 100.0) is None
    other = DiscoveryResponder(bytes(32), limits=UNLIMITED)
    assert other.handle(small, SOURCE, 100.0) is None  # another secret
    assert node.stats.refused == 3
    assert other.stats.refused == 1
    assert node.stats.validated == 1


def test_a_validated_who_has_needs_no_padding() -> None:
    node = responder()
    request = WhoHas(NONCE, IDENTITY.did_text, node.cookie(SOURCE, 5.0)).encode()
    answer = node.handle(request, SOURCE, 5.0)
    assert answer is not None
    assert len(answer) > len(request)
    assert node.stats.validated == 1


# ------------------------------------------------------------ rate limiting


def test_each_source_has_a_token_bucket() -> None:
    node = responder(DiscoveryLimits(source_rate=1.0, source_burst=3.0))
    probe = Probe.padded(NONCE).encode()
    answers = [node.handle(probe, SOURCE, 10.0) for _ in range(5)]
    assert [a is not None for a in answers] == [True, True, True, False, False]
    assert node.stats.rate_limited == 2
    assert node.handle(probe, "203.0.113.1:1", 10.0) is not None  # others unaffected
    assert node.handle(probe, SOURCE, 11.0) is not None  # one token per second
    assert node.handle(probe, SOURCE, 11.0) is None
    assert node.handle(probe, SOURCE, 5.0) is None  # a clock stepping back refills nothing
    assert node.handle(probe, SOURCE, 1000.0) is not None  # refilled, capped at the burst


def test_the_global_bucket_caps_all_sources_but_one_flooder_drains_only_its_share() -> None:
    node = responder(
        DiscoveryLimits(source_rate=1.0, source_burst=3.0, global_rate=1.0, global_burst=10.0)
    )
    probe = Probe.padded(NONCE).encode()
    flooded = [node.handle(probe, SOURCE, 0.0) for _ in range(100)]
    assert sum(a is not None for a in flooded) == 3
    others = [node.handle(probe, f"203.0.113.{i}:1", 0.0) for i in range(1, 20)]
    assert sum(a is not None for a in others) == 7  # the global budget left: 10 - 3
    assert node.stats.rate_limited == 97 + 12


def test_rate_limited_and_malformed_datagrams_are_counted_once() -> None:
    node = responder(DiscoveryLimits(source_rate=1.0, source_burst=2.0))
    assert node.handle(b"garbage", SOURCE, 0.0) is None
    assert node.handle(Reflex(NONCE, SOURCE).encode(), SOURCE, 0.0) is None  # never answer answers
    assert node.handle(b"garbage", SOURCE, 0.0) is None
    s = node.stats
    assert (s.malformed, s.ignored, s.rate_limited, s.answered, s.refused) == (1, 1, 1, 0, 0)


def test_who_has_for_another_did_or_without_identity_is_ignored() -> None:
    node = responder()
    assert node.handle(WhoHas.padded(NONCE, OTHER.did_text).encode(), SOURCE, 0.0) is None
    anonymous = DiscoveryResponder(SECRET, limits=UNLIMITED)
    assert anonymous.handle(WhoHas.padded(NONCE, OTHER.did_text).encode(), SOURCE, 0.0) is None
    assert anonymous.handle(Probe.padded(NONCE).encode(), SOURCE, 0.0) is not None
    assert node.stats.ignored == anonymous.stats.ignored == 1


def test_the_source_table_is_bounded_least_recently_seen_evicted() -> None:
    node = responder(DiscoveryLimits(max_sources=8))
    probe = Probe.padded(NONCE).encode()
    sources = [f"203.0.113.{i}:9" for i in range(20)]
    for i, source in enumerate(sources):
        node.handle(probe, source, float(i))
        node.handle(probe, sources[0], float(i))  # source 0 stays recently seen
        assert node.tracked_sources <= 8
    assert node.tracked_sources == 8
    assert node.is_tracked(sources[0])
    assert node.is_tracked(sources[-1])
    assert not node.is_tracked(sources[1])


@pytest.mark.parametrize(
    "kwargs",
    [{"source_rate": 0.0}, {"global_burst": -1.0}, {"max_sources": 0}, {"cookie_period": 0.0}],
)
def test_limits_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        DiscoveryLimits(**kwargs)


def test_responder_configuration_is_validated() -> None:
    with pytest.raises(ConfigError, match="32"):
        DiscoveryResponder(b"short")
    with pytest.raises(ConfigError, match="listen_address"):
        DiscoveryResponder(SECRET, identity=IDENTITY)
    with pytest.raises(ConfigError):
        DiscoveryResponder(SECRET, identity=IDENTITY, listen_address="nowhere")


# -------------------------------------------------------------- dial-back


def test_dial_back_messages_have_known_bytes() -> None:
    cookie = bytes(range(100, 100 + COOKIE_SIZE))
    request = DialBack(NONCE, cookie, 7000).encode()
    assert request.hex() == ("4c3244500105" + NONCE.hex() + "10" + cookie.hex() + "1b58")
    result = DialResult(NONCE, DIAL_REACHED, "203.0.113.5:7000").encode()
    assert result.hex() == ("4c3244500106" + NONCE.hex() + "00" + "10" + b"203.0.113.5:7000".hex())
    assert decode_message(request) == DialBack(NONCE, cookie, 7000)
    assert decode_message(result) == DialResult(NONCE, DIAL_REACHED, "203.0.113.5:7000")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("4c3244500105" + "00" * 16 + "00" + "1b58", "cookie length 0"),
        ("4c3244500105" + "00" * 16 + "10" + "11" * 16 + "0000", "port 0"),
        ("4c3244500106" + "00" * 16 + "07" + "0131", "status 7"),
    ],
)
def test_damaged_dial_back_messages_are_malformed(data: str, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        decode_message(bytes.fromhex(data))


def test_a_dial_back_is_dialled_only_for_a_proven_source_and_only_at_its_ip() -> None:
    node = responder()
    cookie = node.cookie(SOURCE, 0.0)
    assert node.handle(DialBack(NONCE, cookie, 7000).encode(), SOURCE, 0.0) is None  # no I/O
    job = node.receive(DialBack(NONCE, cookie, 7000).encode(), SOURCE, 0.0)
    assert job == DialJob(NONCE, "198.51.100.9:7000")
    assert isinstance(job, DialJob)
    assert decode_message(job.answer(DIAL_UNREACHABLE)) == DialResult(
        NONCE, DIAL_UNREACHABLE, "198.51.100.9:7000"
    )
    # Another source's cookie, or a stale one: refused, nothing dialled.
    other = "198.51.100.10:40000"
    assert node.handle(DialBack(NONCE, cookie, 7000).encode(), other, 0.0) is None
    assert node.handle(DialBack(NONCE, cookie, 7000).encode(), SOURCE, 500.0) is None
    stats = node.stats
    assert (stats.dialbacks, stats.refused, stats.validated) == (2, 2, 2)


def test_answers_to_dial_backs_are_never_answered() -> None:
    node = responder()
    result = DialResult(NONCE, DIAL_REACHED, SOURCE).encode()
    assert node.handle(result, SOURCE, 0.0) is None
    assert node.stats.ignored == 1


@pytest.mark.parametrize("kwargs", [{"max_dialbacks": 0}, {"dialback_timeout": 0.0}])
def test_dial_back_limits_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        DiscoveryLimits(**kwargs)
