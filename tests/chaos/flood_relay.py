"""A reservation flood (run by tests/chaos/test_nat.py inside a namespace):
``flood_relay.py RELAY_DID@HOST:PORT COUNT`` opens one μTCP connection to
the relay and sends COUNT RESERVEs, each validly signed by a fresh DID,
then prints how many were granted and how many refused."""

from __future__ import annotations

import socket
import sys
import time

from l2session.crypto import primitives
from l2session.crypto.rng import SeededRandom
from l2session.identity.identity import Identity
from l2session.runtime.directory import parse_peer
from l2session.transports.address import parse_address
from l2session.transports.framing import FrameDecoder, encode_frame, encode_hello
from l2session.wire.relay import (
    Reserve,
    ReserveOk,
    ReserveReject,
    decode_relay,
    encode_relay,
    reserve_signed_bytes,
)


def main() -> int:
    relay_did, address = parse_peer(sys.argv[1])
    count = int(sys.argv[2])
    host, port = parse_address(address)
    frames = [encode_hello(0)]
    for i in range(count):
        who = Identity.generate(SeededRandom(f"flood {i}"))
        nonce = SeededRandom(f"flood nonce {i}").random_bytes(16)
        ts = int(time.time() * 1000)
        signed = reserve_signed_bytes(relay_did, who.did_text, ts, nonce)
        sig = primitives.ed25519_sign(who.signing, signed)
        frames.append(encode_frame(encode_relay(Reserve(ts, nonce, who.did_text, sig))))
    granted = refused = 0
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(b"".join(frames))
        decoder = FrameDecoder()
        hello_seen = False
        buffer = b""
        deadline = time.monotonic() + 30
        while granted + refused < count and time.monotonic() < deadline:
            chunk = conn.recv(65536)
            if not chunk:
                break
            buffer += chunk
            if not hello_seen:
                if len(buffer) < len(encode_hello(0)):
                    continue
                buffer, hello_seen = buffer[len(encode_hello(0)) :], True
            for frame in decoder.feed(buffer):
                answer = decode_relay(frame)
                granted += isinstance(answer, ReserveOk)
                refused += isinstance(answer, ReserveReject)
            buffer = b""
    print(granted, refused)
    return 0


if __name__ == "__main__":
    sys.exit(main())
