"""``l2session demo``: a PQXDH handshake and a Double Ratchet exchange
between two local identities, printed step by step.

Everything is real (OS randomness, real keys, real ML-KEM-768); the messages
pass in memory.  No secret is printed: where the demo shows that both sides
agree on a key, it compares them and prints the verdict and a public
fingerprint of the transcript.  Later issues grow this into a three-node demo
over QUIC.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from l2session.crypto import primitives
from l2session.crypto.handshake_guard import HandshakeReplayGuard
from l2session.crypto.kdf import fingerprint
from l2session.crypto.pqxdh import InitiatorHandshake, ResponderHandshake
from l2session.crypto.prekey_records import SignedPrekeySet
from l2session.crypto.ratchet import HEADER_SIZE, DoubleRatchet
from l2session.crypto.rng import RandomSource
from l2session.errors import L2SessionError
from l2session.identity.identity import Identity
from l2session.identity.prekeys import PrekeyStore
from l2session.identity.resolver import default_resolver, resolve_signing_key
from l2session.runtime.entropy import SystemRandom

Printer = Callable[[str], None]


def _short(data: bytes, n: int = 8) -> str:
    return data[:n].hex() + "…"


def _size(n: int) -> str:
    return f"{n:,} B"


class _Steps:
    def __init__(self, out: Printer) -> None:
        self._out = out
        self._number = 0

    def step(self, title: str) -> None:
        self._number += 1
        self._out(f"\n[{self._number}] {title}")

    def line(self, text: str) -> None:
        self._out(f"    {text}")


def _exchange(
    steps: _Steps, sender: str, receiver: str, tx: DoubleRatchet, rx: DoubleRatchet, text: str
) -> bytes:
    key_before = tx.sending_ratchet_key
    message = tx.encrypt(text.encode())
    stepped = " (DH ratchet step: new ratchet key)" if tx.sending_ratchet_key != key_before else ""
    n = int.from_bytes(message[36:40], "big")
    steps.line(
        f"{sender} -> {receiver}: {text!r}  {_size(len(message))}, "
        f"ratchet key {_short(message[:32], 4)}, n={n}{stepped}"
    )
    received = rx.decrypt(message).decode()
    steps.line(f"{' ' * len(sender)}    {receiver} decrypts: {received!r}")
    return message


def run(out: Printer = print, rng: RandomSource | None = None) -> int:
    """Run the demo, writing lines through ``out``; returns an exit code."""
    rng = rng or SystemRandom()
    now = time.time()
    steps = _Steps(out)
    resolver = default_resolver()
    out("l2session demo: post-quantum PQXDH handshake and Double Ratchet, step by step")

    steps.step("Two identities (Ed25519 DID key + X25519 identity key each)")
    alice = Identity.generate(rng)
    bob = Identity.generate(rng)
    steps.line(f"alice  {alice.did}")
    steps.line(f"bob    {bob.did}")

    steps.step("Bob publishes a signed prekey bundle")
    bob_prekeys = PrekeyStore.create(bob, rng=rng, now=now)
    bundle = bob_prekeys.bundle()
    signed = bundle.signed_prekeys
    steps.line(f"bundle {_size(len(bundle.encode()))}:")
    steps.line(f"  X25519 identity key      {_short(signed.identity_dh)}")
    steps.line(f"  signed X25519 prekey #{signed.prekey_id}  {_short(signed.signed_prekey)}")
    steps.line(f"  signed ML-KEM-768 prekey {_size(len(signed.pq_prekey))}")
    steps.line(f"  {len(bundle.one_time_prekeys)} signed one-time X25519 prekeys")
    lifetime_days = (signed.expires_ms - signed.created_ms) / 86_400_000
    steps.line(f"  valid for {lifetime_days:.0f} days (7 current + 2 overlap)")

    steps.step("Alice proves Bob's DID key and picks a one-time prekey")
    bob_key = resolve_signing_key(resolver, bob.did)
    bundle.check_signing_key(bob_key)
    one_time = bundle.pick_one_time(rng)
    steps.line(f"did:key decodes to Ed25519 key {_short(bob_key)}; bundle key matches")
    steps.line(f"one-time prekey #{one_time.prekey_id if one_time else '-'}")

    started = time.perf_counter()
    handshake, init = InitiatorHandshake.start(
        local=alice,
        peer_did=bob.did_text,
        peer_signing_key=bob_key,
        signed_prekeys=signed,
        one_time_prekey=one_time,
        rng=rng,
        now=now,
    )
    steps.step(f"INIT alice -> bob, {_size(len(init))}")
    steps.line("verified the signed prekey set and the one-time prekey (Ed25519)")
    steps.line("ephemeral X25519 key EK_A + ephemeral ML-KEM-768 key EKEM_A (1,184 B)")
    steps.line("DH1..DH4 = X25519(IK_A,SPK_B) (EK_A,IK_B) (EK_A,SPK_B) (EK_A,OPK_B)")
    steps.line("CT1 = ML-KEM-768 encapsulation to Bob's signed PQ prekey (1,088 B)")
    steps.line("signed by Alice's DID key over the transcript")

    guard = HandshakeReplayGuard()
    waiting, response = ResponderHandshake.receive_init(
        init,
        local=bob,
        prekeys=bob_prekeys,
        peer_signing_key=lambda did: resolve_signing_key(resolver, did),
        guard=guard,
        rng=rng,
        now=now,
    )
    steps.step(f"RESPONSE bob -> alice, {_size(len(response))}")
    steps.line("Bob checked: addressed to him, timestamp fresh, not a replay,")
    steps.line("            prekeys known, Alice's signature valid; then DH1..DH4 + SS1")
    steps.line("EK_B, CT2 = ML-KEM-768 encapsulation to EKEM_A, DH5 = X25519(EK_B, EK_A)")
    steps.line("signed by Bob's DID key, plus a key confirmation MAC")

    alice_result, finish = handshake.receive_response(response)
    bob_result = waiting.receive_finish(finish)
    elapsed = (time.perf_counter() - started) * 1000
    steps.step(f"FINISH alice -> bob, {_size(len(finish))}: Alice's key confirmation")
    steps.line(f"session id       {alice_result.session_id.hex()}")
    steps.line(f"transcript print {fingerprint(alice_result.handshake_hash, length=8).hex()}")
    agree = (
        primitives.ct_equal(alice_result.root_key, bob_result.root_key)
        and alice_result.session_id == bob_result.session_id
    )
    steps.line(f"root keys agree: {'yes' if agree else 'NO'} (compared, never printed)")
    steps.line(f"one-time prekey consumed: {bob_prekeys.one_time_count} of 100 left")
    steps.line(f"handshake took {elapsed:.1f} ms on one core, both sides")

    steps.step("Double Ratchet: a fresh key for every message")
    a, b = alice_result.ratchet, bob_result.ratchet
    _exchange(steps, "bob", "alice", b, a, "hello alice")
    _exchange(steps, "alice", "bob", a, b, "hello bob")
    _exchange(steps, "alice", "bob", a, b, "same chain, next key")
    _exchange(steps, "bob", "alice", b, a, "my turn again")

    steps.step("Out of order, lost, replayed, tampered")
    late = [a.encrypt(f"message {i}".encode()) for i in range(4)]
    steps.line("alice sends #0..#3; the network delivers #3, #0, #2 and holds #1 back")
    for index in (3, 0, 2):
        steps.line(f"bob decrypts #{index}: {b.decrypt(late[index]).decode()!r}")
    steps.line(f"message #1 is still outstanding: {b.skipped_key_count} skipped key kept")
    for label, bad in (
        ("replayed #3", late[3]),
        (
            "flipped bit",
            late[1][:HEADER_SIZE] + bytes([late[1][HEADER_SIZE] ^ 1]) + late[1][HEADER_SIZE + 1 :],
        ),
        ("truncated", late[1][:-1]),
    ):
        try:
            b.decrypt(bad)
            steps.line(f"{label}: ACCEPTED (this is a bug)")
            return 1
        except L2SessionError as exc:
            steps.line(f"{label}: refused, {type(exc).__name__}")
    steps.line(f"#1 arrives at last: {b.decrypt(late[1]).decode()!r}; nothing lost, nothing twice")

    steps.step("Post-quantum re-seed (what key rotation uses)")
    kem = primitives.mlkem_generate(rng)
    steps.line(f"alice sends a fresh ML-KEM-768 key ({_size(len(kem.public))}) in the session")
    secret, ciphertext = primitives.mlkem_encapsulate(kem.public, rng)
    b.expect_pq_reseed(secret)
    steps.line("bob encapsulates to it, expects the re-seed, and answers with the ciphertext")
    _exchange(steps, "bob", "alice", b, a, "ciphertext (still epoch 0)")
    a.start_pq_reseed(primitives.mlkem_decapsulate(kem, ciphertext))
    steps.line("alice decapsulates and starts the re-seed at her next DH step")
    _exchange(steps, "alice", "bob", a, b, "first message of epoch 1")
    _exchange(steps, "bob", "alice", b, a, "epoch 1 both ways")
    steps.line(f"epoch now alice={a.epoch} bob={b.epoch}: fresh ML-KEM secret in the root key")

    steps.step("An impostor: Eve publishes prekeys under Bob's DID")
    eve = Identity.generate(rng)
    forged = SignedPrekeySet.create(
        owner_did=bob.did_text,
        signing=eve.signing,
        identity_dh=eve.agreement_public,
        prekey_id=signed.prekey_id,
        signed_prekey=signed.signed_prekey,
        pq_prekey=signed.pq_prekey,
        created_ms=signed.created_ms,
        expires_ms=signed.expires_ms,
    )
    try:
        InitiatorHandshake.start(
            local=alice,
            peer_did=bob.did_text,
            peer_signing_key=bob_key,
            signed_prekeys=forged,
            one_time_prekey=None,
            rng=rng,
            now=now,
        )
        steps.line("forged bundle ACCEPTED (this is a bug)")
        return 1
    except L2SessionError as exc:
        steps.line(f"refused before any key was used: {type(exc).__name__}: {exc}")
    out("\nDone.")
    return 0
