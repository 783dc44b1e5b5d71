"""PQXDH: the hybrid X25519 + ML-KEM-768 handshake, adapted to a live session.

It follows Signal's PQXDH (four X25519 agreements with identity, signed and
one-time prekeys, plus an ML-KEM-768 encapsulation to a signed PQ prekey) and
completes it interactively, as DESIGN.md §2.7 decides: the responder answers
with its own ephemeral X25519 key and an ML-KEM ciphertext to the initiator's
ephemeral ML-KEM key, so the root key depends on both sides' ephemerals, both
identities and two ML-KEM secrets.  Both sides sign the transcript with their
DID key, and both confirm the derived keys.  docs/CRYPTO.md is the byte-level
specification; the names below follow it.

Three messages::

    A -> B  INIT      IK_A, EK_A, EKEM_A, prekey ids, CT1 = Encaps(PQSPK_B), ts, Sig_A
    B -> A  RESPONSE  EK_B, CT2 = Encaps(EKEM_A), Sig_B, confirm_B
    A -> B  FINISH    confirm_A

    DH1 = X25519(IK_A, SPK_B)   DH2 = X25519(EK_A, IK_B)   DH3 = X25519(EK_A, SPK_B)
    DH4 = X25519(EK_A, OPK_B)   (empty without a one-time prekey)
    SS1 = ML-KEM shared secret of CT1            SS2 = ML-KEM shared secret of CT2
    DH5 = X25519(EK_A, EK_B)
    S1  = KDF("pqxdh stage1", DH1, DH2, DH3, DH4, SS1, TH1)
    root || chain || resumption || kc_B || kc_A = KDF("pqxdh master", S1, DH5, SS2, TH2; 160)

Each step verifies before it derives and commits only after it verified: a
forged or damaged message raises a typed error and leaves the handshake able
to take the genuine one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from l2session.crypto import primitives
from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.handshake_messages import (
    CONFIRM_SIZE,
    KIND_PERSISTENT,
    HandshakeFinish,
    HandshakeInit,
    HandshakeResponse,
)
from l2session.crypto.kdf import (
    LABEL_PQXDH_MASTER,
    LABEL_PQXDH_STAGE1,
    LABEL_SESSION_ID,
    Transcript,
    kdf,
    mac,
)
from l2session.crypto.prekey_records import OneTimePrekey, SignedPrekeySet, to_millis
from l2session.crypto.primitives import (
    ED25519_SIGNATURE_SIZE,
    DhKeyPair,
    Encapsulator,
    KemKeyPair,
    SigningKeyPair,
    ct_equal,
)
from l2session.crypto.ratchet import DoubleRatchet
from l2session.crypto.rng import RandomSource
from l2session.errors import AuthenticationFailed, HandshakeError

SESSION_ID_SIZE: Final = 16
_SIG_INIT: Final = b"l2session v1 pqxdh initiator\x00"
_SIG_RESPONSE: Final = b"l2session v1 pqxdh responder\x00"

Role = Literal["initiator", "responder"]

#: Given a peer's DID, return the Ed25519 public key it is proven by
#: (did:key: decoded; other methods: resolved).  Raises typed errors.
KeyLookup = Callable[[str], bytes]


class LocalParty(Protocol):
    """What a handshake needs of this node's identity (``Identity`` fits)."""

    @property
    def did_text(self) -> str: ...

    @property
    def signing(self) -> SigningKeyPair: ...

    @property
    def agreement(self) -> DhKeyPair: ...


@dataclass(frozen=True, slots=True)
class SignedPrekeySecrets:
    """A published signed prekey set and its two private keys."""

    record: SignedPrekeySet
    signed_prekey: DhKeyPair = field(repr=False)
    pq_prekey: KemKeyPair = field(repr=False)


@dataclass(frozen=True, slots=True)
class OneTimePrekeySecret:
    record: OneTimePrekey
    key: DhKeyPair = field(repr=False)


class ResponderPrekeys(Protocol):
    """The responder's private prekeys (``identity.PrekeyStore`` fits)."""

    def signed_prekeys(self, prekey_id: int, now: float) -> SignedPrekeySecrets:
        """The set with this id, or :class:`PrekeyNotFound` / :class:`PrekeyExpired`."""
        ...

    def one_time_prekey(self, prekey_id: int) -> OneTimePrekeySecret:
        """The unused one-time prekey with this id, or :class:`PrekeyNotFound`."""
        ...

    def consume_one_time_prekey(self, prekey_id: int) -> None:
        """Delete it for good (called once the handshake authenticated)."""
        ...


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """What a completed handshake yields, on either side.

    ``session_id`` and ``handshake_hash`` are public and equal on both sides.
    ``root_key`` and ``resumption_secret`` are secrets (hidden from ``repr``,
    left out of ``==``).  ``root_key`` is the ratchet's *initial* root key,
    exposed for test vectors and audits: using it as a key for anything else
    would reuse it, so don't.  ``resumption_secret`` is what session
    resumption derives from (and only that).
    """

    role: Role
    local_did: str
    peer_did: str
    session_id: bytes
    handshake_hash: bytes
    peer_signing_key: bytes
    peer_identity_dh: bytes
    used_one_time_prekey: bool
    root_key: bytes = field(repr=False, compare=False)
    resumption_secret: bytes = field(repr=False, compare=False)
    ratchet: DoubleRatchet = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True, repr=False)
class _Master:
    root_key: bytes
    chain_key: bytes
    resumption_secret: bytes
    responder_confirm_key: bytes
    initiator_confirm_key: bytes

    def __repr__(self) -> str:
        return "_Master(<secret>)"


def _stage1(dhs: tuple[bytes, bytes, bytes, bytes], ss1: bytes, th1: bytes) -> bytes:
    return kdf(LABEL_PQXDH_STAGE1, *dhs, ss1, th1)


def _master(stage1: bytes, dh5: bytes, ss2: bytes, th2: bytes) -> _Master:
    out = kdf(LABEL_PQXDH_MASTER, stage1, dh5, ss2, th2, length=160)
    return _Master(out[:32], out[32:64], out[64:96], out[96:128], out[128:160])


def session_id_of(th1: bytes) -> bytes:
    """The public session identifier both sides derive from TH1."""
    return kdf(LABEL_SESSION_ID, th1, length=SESSION_ID_SIZE)


def _start_transcript(
    initiator_key: bytes,
    responder_key: bytes,
    record: SignedPrekeySet,
    one_time: OneTimePrekey | None,
) -> Transcript:
    """Both DID keys, then the prekey records the INIT uses.  (The DIDs
    themselves are in INIT; binding the keys too matters for DID methods
    whose documents can change keys.)"""
    transcript = Transcript()
    transcript.absorb(initiator_key)
    transcript.absorb(responder_key)
    transcript.absorb(record.encode())
    transcript.absorb(one_time.encode() if one_time is not None else b"")
    return transcript


# ==========================================================================
# Initiator


class InitiatorHandshake:
    """The initiator's side: :meth:`start`, then :meth:`receive_response`."""

    __slots__ = (
        "_done",
        "_ephemeral",
        "_ephemeral_kem",
        "_local",
        "_peer_did",
        "_peer_identity_dh",
        "_peer_signing_key",
        "_rng",
        "_session_id",
        "_stage1",
        "_transcript",
        "_used_one_time",
    )

    def __init__(
        self,
        *,
        local: LocalParty,
        peer_did: str,
        peer_signing_key: bytes,
        peer_identity_dh: bytes,
        ephemeral: DhKeyPair,
        ephemeral_kem: KemKeyPair,
        stage1: bytes,
        transcript: Transcript,
        rng: RandomSource,
        used_one_time: bool,
    ) -> None:
        """Internal: build one with :meth:`start`."""
        self._local = local
        self._peer_did = peer_did
        self._peer_signing_key = peer_signing_key
        self._peer_identity_dh = peer_identity_dh
        self._ephemeral = ephemeral
        self._ephemeral_kem = ephemeral_kem
        self._stage1 = stage1
        self._session_id = session_id_of(transcript.digest())
        self._transcript = transcript
        self._rng = rng
        self._used_one_time = used_one_time
        self._done = False

    @classmethod
    def start(
        cls,
        *,
        local: LocalParty,
        peer_did: str,
        peer_signing_key: bytes,
        signed_prekeys: SignedPrekeySet,
        one_time_prekey: OneTimePrekey | None,
        rng: RandomSource,
        now: float,
        encapsulator: Encapsulator | None = None,
        session_kind: int = KIND_PERSISTENT,
    ) -> tuple[InitiatorHandshake, bytes]:
        """Verify the peer's prekeys and build INIT.

        ``peer_signing_key`` must be the Ed25519 key that ``peer_did`` is
        proven by (decoded from a did:key, or resolved); every prekey
        signature is checked against it before any key is used.
        ``session_kind`` (``KIND_*``) tells the responder what it may keep.
        """
        if peer_did == local.did_text:
            raise HandshakeError("cannot open a session with this node's own DID")
        signed_prekeys.verify(peer_signing_key, owner_did=peer_did, now=now)
        if one_time_prekey is not None:
            one_time_prekey.verify(peer_signing_key, owner_did=peer_did)

        ephemeral = primitives.x25519_generate(rng)
        ephemeral_kem = primitives.mlkem_generate(rng)
        dh1 = primitives.x25519(local.agreement, signed_prekeys.signed_prekey)
        dh2 = primitives.x25519(ephemeral, signed_prekeys.identity_dh)
        dh3 = primitives.x25519(ephemeral, signed_prekeys.signed_prekey)
        dh4 = (
            primitives.x25519(ephemeral, one_time_prekey.public)
            if one_time_prekey is not None
            else b""
        )
        ss1, ct1 = primitives.mlkem_encapsulate(signed_prekeys.pq_prekey, rng, encapsulator)

        init = HandshakeInit(
            initiator_did=local.did_text,
            responder_did=peer_did,
            initiator_identity_dh=local.agreement.public,
            ephemeral_dh=ephemeral.public,
            ephemeral_kem=ephemeral_kem.public,
            signed_prekey_id=signed_prekeys.prekey_id,
            one_time_prekey_id=one_time_prekey.prekey_id if one_time_prekey else None,
            kem_ciphertext=ct1,
            timestamp_ms=to_millis(now),
            session_kind=session_kind,
        )
        body = init.body()
        transcript = _start_transcript(
            local.signing.public, peer_signing_key, signed_prekeys, one_time_prekey
        )
        transcript.absorb(body)
        signature = primitives.ed25519_sign(local.signing, _SIG_INIT + transcript.digest())
        transcript.absorb(signature)
        th1 = transcript.digest()

        handshake = cls(
            local=local,
            peer_did=peer_did,
            peer_signing_key=peer_signing_key,
            peer_identity_dh=signed_prekeys.identity_dh,
            ephemeral=ephemeral,
            ephemeral_kem=ephemeral_kem,
            stage1=_stage1((dh1, dh2, dh3, dh4), ss1, th1),
            transcript=transcript,
            rng=rng,
            used_one_time=one_time_prekey is not None,
        )
        return handshake, body + signature

    @property
    def session_id(self) -> bytes:
        return self._session_id

    @property
    def peer_did(self) -> str:
        return self._peer_did

    def receive_response(self, data: bytes) -> tuple[HandshakeResult, bytes]:
        """Verify RESPONSE; return the result and the FINISH bytes to send.

        On any error the handshake is unchanged and can take another response.
        """
        if self._done:
            raise HandshakeError("this handshake is already complete")
        response = HandshakeResponse.decode(data)
        transcript = self._transcript.copy()
        transcript.absorb(data[: -(ED25519_SIGNATURE_SIZE + CONFIRM_SIZE)])
        primitives.ed25519_verify(
            self._peer_signing_key,
            response.signature,
            _SIG_RESPONSE + transcript.digest(),
            what=f"handshake response from {self._peer_did}",
        )
        transcript.absorb(response.signature)
        th2 = transcript.digest()
        dh5 = primitives.x25519(self._ephemeral, response.ephemeral_dh)
        ss2 = primitives.mlkem_decapsulate(self._ephemeral_kem, response.kem_ciphertext)
        master = _master(self._stage1, dh5, ss2, th2)
        if not ct_equal(mac(master.responder_confirm_key, th2), response.confirm):
            raise AuthenticationFailed(
                f"{self._peer_did} did not confirm the handshake keys",
                reason="key_confirmation_failed",
            )
        transcript.absorb(response.confirm)
        finish = HandshakeFinish(mac(master.initiator_confirm_key, transcript.digest()))
        transcript.absorb(finish.confirm)
        handshake_hash = transcript.digest()
        ratchet = DoubleRatchet.for_initiator(
            root_key=master.root_key,
            chain_key=master.chain_key,
            own_ephemeral=self._ephemeral,
            peer_ephemeral=response.ephemeral_dh,
            associated_data=handshake_hash,
            rng=self._rng,
        )
        self._done = True
        result = HandshakeResult(
            role="initiator",
            local_did=self._local.did_text,
            peer_did=self._peer_did,
            session_id=self._session_id,
            handshake_hash=handshake_hash,
            peer_signing_key=self._peer_signing_key,
            peer_identity_dh=self._peer_identity_dh,
            used_one_time_prekey=self._used_one_time,
            root_key=master.root_key,
            resumption_secret=master.resumption_secret,
            ratchet=ratchet,
        )
        return result, finish.encode()


# ==========================================================================
# Responder


def _guard_key(init: HandshakeInit) -> bytes:
    """Replay memory is per (initiator DID, EK_A): another DID holder who
    copies Alice's ephemeral key into an INIT of their own must not block
    Alice's genuine one."""
    return init.initiator_did.encode("utf-8") + b"\x00" + init.ephemeral_dh


class ResponderHandshake:
    """The responder's side: :meth:`receive_init`, then :meth:`receive_finish`."""

    __slots__ = (
        "_done",
        "_expected_finish",
        "_handshake_hash",
        "_init",
        "_local",
        "_master",
        "_own_ephemeral",
        "_peer_signing_key",
        "_rng",
        "_session_id",
    )

    def __init__(
        self,
        *,
        init: HandshakeInit,
        local: LocalParty,
        peer_signing_key: bytes,
        own_ephemeral: DhKeyPair,
        master: _Master,
        expected_finish: bytes,
        handshake_hash: bytes,
        session_id: bytes,
        rng: RandomSource,
    ) -> None:
        """Internal: build one with :meth:`receive_init`."""
        self._init = init
        self._local = local
        self._peer_signing_key = peer_signing_key
        self._own_ephemeral = own_ephemeral
        self._master = master
        self._expected_finish = expected_finish
        self._handshake_hash = handshake_hash
        self._session_id = session_id
        self._rng = rng
        self._done = False

    @classmethod
    def receive_init(
        cls,
        data: bytes,
        *,
        local: LocalParty,
        prekeys: ResponderPrekeys,
        peer_signing_key: KeyLookup,
        guard: HandshakeReplayGuard,
        rng: RandomSource,
        now: float,
        encapsulator: Encapsulator | None = None,
        expected_session_id: bytes | None = None,
    ) -> tuple[ResponderHandshake, bytes]:
        """Verify INIT and build RESPONSE.

        ``expected_session_id`` is the id the INIT arrived under (a packet
        header the signature does not cover): it is checked before anything
        is committed, so a rewritten header cannot burn a one-time prekey.

        Checks run cheapest first and before any DH or KEM work: addressing,
        freshness and replay, prekey lookup, then the initiator's signature.
        The one-time prekey is consumed and the INIT remembered only after
        everything verified.
        """
        init = HandshakeInit.decode(data)
        if init.responder_did != local.did_text:
            raise HandshakeError(
                f"handshake is addressed to {init.responder_did!r}, not to this node"
            )
        if init.initiator_did == local.did_text:
            raise HandshakeError("handshake claims to come from this node's own DID")
        guard_key = _guard_key(init)
        guard.check(guard_key, init.timestamp_ms, now)
        secrets = prekeys.signed_prekeys(init.signed_prekey_id, now)
        one_time = (
            prekeys.one_time_prekey(init.one_time_prekey_id)
            if init.one_time_prekey_id is not None
            else None
        )
        initiator_key = peer_signing_key(init.initiator_did)

        body = data[: len(data) - len(init.signature)]
        transcript = _start_transcript(
            initiator_key,
            local.signing.public,
            secrets.record,
            one_time.record if one_time else None,
        )
        transcript.absorb(body)
        primitives.ed25519_verify(
            initiator_key,
            init.signature,
            _SIG_INIT + transcript.digest(),
            what=f"handshake from {init.initiator_did!r}",
        )
        transcript.absorb(init.signature)
        th1 = transcript.digest()
        session_id = session_id_of(th1)
        if expected_session_id is not None and not primitives.ct_equal(
            session_id, expected_session_id
        ):
            raise HandshakeError("the INIT arrived under another session id than its own")

        dh1 = primitives.x25519(secrets.signed_prekey, init.initiator_identity_dh)
        dh2 = primitives.x25519(local.agreement, init.ephemeral_dh)
        dh3 = primitives.x25519(secrets.signed_prekey, init.ephemeral_dh)
        dh4 = primitives.x25519(one_time.key, init.ephemeral_dh) if one_time else b""
        ss1 = primitives.mlkem_decapsulate(secrets.pq_prekey, init.kem_ciphertext)
        stage1 = _stage1((dh1, dh2, dh3, dh4), ss1, th1)

        ephemeral = primitives.x25519_generate(rng)
        ss2, ct2 = primitives.mlkem_encapsulate(init.ephemeral_kem, rng, encapsulator)
        dh5 = primitives.x25519(ephemeral, init.ephemeral_dh)
        response_body = HandshakeResponse(ephemeral.public, ct2).body()
        transcript.absorb(response_body)
        signature = primitives.ed25519_sign(local.signing, _SIG_RESPONSE + transcript.digest())
        transcript.absorb(signature)
        th2 = transcript.digest()
        master = _master(stage1, dh5, ss2, th2)
        confirm = mac(master.responder_confirm_key, th2)
        transcript.absorb(confirm)
        expected_finish = mac(master.initiator_confirm_key, transcript.digest())
        transcript.absorb(expected_finish)

        # Everything verified and derived: commit.
        if one_time is not None:
            prekeys.consume_one_time_prekey(one_time.record.prekey_id)
        guard.commit(guard_key, init.timestamp_ms, now)

        handshake = cls(
            init=init,
            local=local,
            peer_signing_key=initiator_key,
            own_ephemeral=ephemeral,
            master=master,
            expected_finish=expected_finish,
            handshake_hash=transcript.digest(),
            session_id=session_id,
            rng=rng,
        )
        return handshake, response_body + signature + confirm

    @property
    def session_id(self) -> bytes:
        return self._session_id

    @property
    def peer_did(self) -> str:
        return self._init.initiator_did

    @property
    def session_kind(self) -> int:
        """The kind the verified INIT asked for (``KIND_*``)."""
        return self._init.session_kind

    def receive_finish(self, data: bytes) -> HandshakeResult:
        """Verify FINISH; on any error the handshake still waits for it."""
        if self._done:
            raise HandshakeError("this handshake is already complete")
        finish = HandshakeFinish.decode(data)
        if not ct_equal(finish.confirm, self._expected_finish):
            raise AuthenticationFailed(
                f"{self._init.initiator_did!r} did not confirm the handshake keys",
                reason="key_confirmation_failed",
            )
        ratchet = DoubleRatchet.for_responder(
            root_key=self._master.root_key,
            chain_key=self._master.chain_key,
            own_ephemeral=self._own_ephemeral,
            peer_ephemeral=self._init.ephemeral_dh,
            associated_data=self._handshake_hash,
            rng=self._rng,
        )
        self._done = True
        return HandshakeResult(
            role="responder",
            local_did=self._local.did_text,
            peer_did=self._init.initiator_did,
            session_id=self._session_id,
            handshake_hash=self._handshake_hash,
            peer_signing_key=self._peer_signing_key,
            peer_identity_dh=self._init.initiator_identity_dh,
            used_one_time_prekey=self._init.one_time_prekey_id is not None,
            root_key=self._master.root_key,
            resumption_secret=self._master.resumption_secret,
            ratchet=ratchet,
        )
