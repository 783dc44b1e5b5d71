"""The other process of ``benchmarks/peers.py``'s peer measurements.

Kept apart from peers.py because it imports no l2session (py-libp2p may live
in another interpreter, ``--libp2p-python``) and because each peer must run
in its own process, as the peers are deployed.  Not a benchmark on its own
(``make bench`` runs ``benchmarks/[a-z]*.py`` only).

Modes (the first argument):

``zmq-server``
    A CurveZMQ DEALER bound on 127.0.0.1 with a fresh key pair; prints
    ``READY <port> <server public key, Z85>`` and serves until ``q``.
``libp2p-server``
    A py-libp2p host (Noise only, yamux) on 127.0.0.1; prints
    ``READY <multiaddr>`` and serves the protocol below until killed.
``libp2p-client <multiaddr> <messages> <rounds> <size> <ping size>``
    Connects, measures, prints one JSON line
    ``{"msgs_per_s": ..., "rtt_us": ...}``.

The protocol, in frames (ZeroMQ messages; on a libp2p stream, a u32
length and the bytes): a frame starting ``d`` is data (counted); ``e``
asks for the frame back (a ping); ``s`` asks for the count received so far
(as ASCII), which the client sends after its last data frame -- on an
ordered channel the answer proves every frame before it arrived; ``q``
ends a ZeroMQ server.
"""

from __future__ import annotations

import json
import statistics
import struct
import sys
import time
from typing import Any

_LEN = struct.Struct(">I")
PROTOCOL = "/l2session-bench/1.0.0"
TIMEOUT = 60.0


def zmq_server() -> int:
    import zmq

    public, secret = zmq.curve_keypair()
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.curve_server = True
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    sock.rcvtimeo = int(TIMEOUT * 1000)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    print(f"READY {port} {public.decode()}", flush=True)
    count = 0
    try:
        while True:
            frame = sock.recv()
            kind = frame[:1]
            if kind == b"d":
                count += 1
            elif kind == b"e":
                sock.send(frame)
            elif kind == b"s":
                sock.send(b"s%d" % count)
                count = 0
            elif kind == b"q":
                return 0
    except zmq.Again:
        return 1  # the parent went away
    finally:
        sock.close(linger=0)
        context.term()


# ----------------------------------------------------------------------
# py-libp2p (trio)


class _Reader:
    """Frames out of a libp2p stream."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def frame(self) -> bytes | None:
        buffer = self.buffer
        while True:
            if len(buffer) >= 4:
                (length,) = _LEN.unpack_from(buffer)
                if len(buffer) >= 4 + length:
                    out = bytes(buffer[4 : 4 + length])
                    del buffer[: 4 + length]
                    return out
            chunk = await self.stream.read(65536)
            if not chunk:
                return None
            buffer += chunk


def _host() -> Any:
    from libp2p import new_host
    from libp2p.crypto.secp256k1 import create_new_key_pair
    from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_pair
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE
    from libp2p.security.noise.transport import Transport as NoiseTransport

    key_pair = create_new_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_pair().private_key)
    return new_host(key_pair=key_pair, sec_opt={NOISE: noise}, muxer_preference="YAMUX")


async def _libp2p_server() -> None:
    import multiaddr
    import trio

    host = _host()
    listen = [multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]

    async def serve(stream: Any) -> None:
        reader, count = _Reader(stream), 0
        while (frame := await reader.frame()) is not None:
            kind = frame[:1]
            if kind == b"d":
                count += 1
            elif kind == b"e":
                await stream.write(_LEN.pack(len(frame)) + frame)
            elif kind == b"s":
                answer = b"s%d" % count
                await stream.write(_LEN.pack(len(answer)) + answer)
                count = 0

    async with host.run(listen_addrs=listen):
        host.set_stream_handler(PROTOCOL, serve)
        address = host.get_addrs()[0]
        print(f"READY {address}", flush=True)
        await trio.sleep_forever()


async def _libp2p_client(address: str, messages: int, rounds: int, size: int, ping: int) -> None:
    import multiaddr
    import trio
    from libp2p.peer.peerinfo import info_from_p2p_addr

    host = _host()
    info = info_from_p2p_addr(multiaddr.Multiaddr(address))
    async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        with trio.fail_after(TIMEOUT):
            await host.connect(info)
            stream = await host.new_stream(info.peer_id, [PROTOCOL])
        reader = _Reader(stream)
        data = b"d" + bytes(size - 1)
        frame = _LEN.pack(len(data)) + data
        sync = _LEN.pack(1) + b"s"
        with trio.fail_after(TIMEOUT):
            t0 = time.perf_counter()
            for _ in range(messages):
                await stream.write(frame)
            await stream.write(sync)
            answer = await reader.frame()
            seconds = time.perf_counter() - t0
        if answer != b"s%d" % messages:
            raise RuntimeError(f"libp2p: the server counted {answer!r} of {messages}")
        ping_data = b"e" + bytes(ping - 1)
        ping_frame = _LEN.pack(len(ping_data)) + ping_data
        samples = []
        with trio.fail_after(TIMEOUT + rounds * 0.1):
            for index in range(rounds + 20):
                t0 = time.perf_counter()
                await stream.write(ping_frame)
                echo = await reader.frame()
                elapsed = time.perf_counter() - t0
                if echo != ping_data:
                    raise RuntimeError("libp2p: the echo differs from the ping")
                if index >= 20:
                    samples.append(elapsed)
        await stream.close()
    figures = {"msgs_per_s": messages / seconds, "rtt_us": 1e6 * statistics.median(samples)}
    print(json.dumps(figures), flush=True)


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else ""
    if mode == "zmq-server":
        return zmq_server()
    if mode in ("libp2p-server", "libp2p-client"):
        import logging

        import trio

        logging.basicConfig(level=logging.ERROR)
        if mode == "libp2p-server":
            trio.run(_libp2p_server)
        else:
            address, messages, rounds, size, ping = argv[1:6]
            trio.run(_libp2p_client, address, int(messages), int(rounds), int(size), int(ping))
        return 0
    print(f"unknown mode {mode!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
