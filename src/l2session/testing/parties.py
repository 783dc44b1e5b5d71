"""Two-party helpers: a node's key material in one object, and a whole
PQXDH handshake between two of them in one call.

For tests, examples and benchmarks.  Everything is real (real keys, real
signatures, real ML-KEM); only the messages pass in memory instead of over a
transport.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.pqxdh import HandshakeResult, InitiatorHandshake, ResponderHandshake
from l2session.crypto.primitives import Encapsulator
from l2session.crypto.rng import RandomSource
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyPolicy, PrekeyStore
from l2session.identity.resolver import DidResolver, default_resolver, resolve_signing_key


@dataclass(slots=True)
class Party:
    """A node's identity, private prekeys and handshake replay guard."""

    identity: Identity
    prekeys: PrekeyStore = field(repr=False)
    guard: HandshakeReplayGuard = field(repr=False)

    @classmethod
    def create(
        cls,
        rng: RandomSource,
        *,
        now: float,
        did: str | None = None,
        policy: PrekeyPolicy | None = None,
    ) -> Party:
        identity = Identity.generate(rng, did)
        prekeys = PrekeyStore.create(identity, rng=rng, now=now, policy=policy)
        return cls(identity, prekeys, HandshakeReplayGuard())

    @property
    def did(self) -> str:
        return self.identity.did_text


def run_handshake(
    initiator: Party,
    responder: Party,
    *,
    rng: RandomSource,
    now: float,
    resolver: DidResolver | None = None,
    use_one_time_prekey: bool = True,
    encapsulator: Encapsulator | None = None,
    responder_rng: RandomSource | None = None,
) -> tuple[HandshakeResult, HandshakeResult]:
    """INIT -> RESPONSE -> FINISH between two parties; returns
    ``(initiator_result, responder_result)``.

    The initiator takes the responder's current bundle (a random one-time
    prekey from it unless ``use_one_time_prekey`` is false) and proves the
    responder's key through ``resolver`` (did:key only by default).
    """
    resolver = resolver or default_resolver()
    bundle = responder.prekeys.bundle()
    one_time = bundle.pick_one_time(rng) if use_one_time_prekey else None
    handshake, init = InitiatorHandshake.start(
        local=initiator.identity,
        peer_did=responder.did,
        peer_signing_key=resolve_signing_key(resolver, responder.identity.did),
        signed_prekeys=bundle.signed_prekeys,
        one_time_prekey=one_time,
        rng=rng,
        now=now,
        encapsulator=encapsulator,
    )
    waiting, response = ResponderHandshake.receive_init(
        init,
        local=responder.identity,
        prekeys=responder.prekeys,
        peer_signing_key=lambda did: resolve_signing_key(resolver, did),
        guard=responder.guard,
        rng=responder_rng or rng,
        now=now,
        encapsulator=encapsulator,
    )
    initiator_result, finish = handshake.receive_response(response)
    responder_result = waiting.receive_finish(finish)
    return initiator_result, responder_result
