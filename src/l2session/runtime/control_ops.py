"""The control socket's requests other than ``listen``: ``status``,
``sessions``, ``send`` (with idempotency keys), ``await``, ``peer_set``,
``peer_forget`` and ``session_close`` (see runtime/control.py for the
framing, docs/NETWORK.md for the contract).

Idempotency keys (``send --id``): the node remembers which message each key
became, ``(peer, stream, seq)``, in ``send-ids.json`` next to its store, so
a client that retries after losing the answer (the node died mid-request)
gets the first message's fate instead of a second copy.  The key is written
(atomically, fsync'd) *before* the message's store commit; at start a key
whose seq the store does not hold (the commit never happened) is dropped,
so the retry sends it.  At most :data:`MAX_SEND_IDS` keys are kept, the
oldest forgotten first.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Final

from l2session import __version__
from l2session.core.link.envelope import Request
from l2session.errors import ConfigError, SessionTimeout
from l2session.identity.foreign import is_foreign
from l2session.runtime.federation_control import send_federated
from l2session.runtime.handle import SessionHandle
from l2session.runtime.node import Node

Json = dict[str, Any]

#: Idempotency keys remembered (``send --id``).
MAX_SEND_IDS: Final = 10_000
#: Longest idempotency key (UTF-8 bytes).
MAX_SEND_ID: Final = 200
#: Longest wait a request may ask for (seconds).
MAX_TIMEOUT: Final = 3600.0


def _ago(now: float, at: float | None) -> float | None:
    return None if at is None or at <= 0 else round(max(0.0, now - at), 3)


def session_row(node: Node, handle: SessionHandle) -> Json:
    """One session as ``sessions``/``status`` show it (``wg show`` style):
    endpoint, path, last handshake, last traffic, RTT, key epoch, messages
    and bytes each way, queue and unread."""
    session = handle.session
    now = node.clock.now()
    history = session.history
    started = history[0].at if history else now
    keyed = [r.at for r in history if r.target is not None and r.target.value == "established"]
    traffic = node.traffic.of(handle.address)
    return {
        "peer": handle.peer_did,
        "state": handle.state.value,
        "transport": handle.path,
        "address": handle.address,
        "age_s": round(now - started, 1),
        "key_epoch": handle.key_epoch,
        "queued": handle.queued,
        "unread": handle.available,
        "last_handshake_s": _ago(now, max(keyed) if keyed else None),
        "last_received_s": _ago(now, traffic.last_in if traffic else None),
        "last_sent_s": _ago(now, traffic.last_out if traffic else None),
        "rtt_ms": None if session.rtt is None else round(session.rtt * 1000, 2),
        "messages_sent": session.outbound.next_seq,
        "messages_received": session.inbound.next_expected,
        "bytes_sent": traffic.bytes_out if traffic else 0,
        "bytes_received": traffic.bytes_in if traffic else 0,
    }


def status(node: Node, started: float) -> Json:
    manager = node.manager
    total = node.traffic.total
    return {
        "ok": True,
        "version": __version__,
        "did": node.did,
        "address": node.address,
        "paths": list(node.paths),
        "uptime_s": round(time.monotonic() - started, 1),
        "session_count": len(manager.sessions),
        "bytes_sent": total.bytes_out,
        "bytes_received": total.bytes_in,
        # Refused packets by reason, and what admission control
        # (core/management/admission.py) did with handshake-opening packets.
        "rejections": dict(manager.rejections),
        "admission": manager.admission.snapshot(),
        "reachability": node.reachability.as_json(),
        "relaying": node.relaying.describe(),
        "sessions": [session_row(node, h) for h in node.sessions()],
    }


class SendIds:
    """Idempotency keys -> (peer, stream, seq), kept in a JSON file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.keys: dict[str, list[Any]] = {}
        if path is not None:
            with contextlib.suppress(FileNotFoundError, ValueError, OSError):
                loaded = json.loads(path.read_text())
                if isinstance(loaded, dict):
                    self.keys = {str(k): v for k, v in loaded.items() if _entry(v)}

    def prune(self, node: Node) -> None:
        """Drop keys whose message the store never committed (the node died
        between writing the key and the commit): a retry must send it."""
        kept: dict[str, list[Any]] = {}
        for key, (peer, stream, seq) in self.keys.items():
            handle = node.session(peer)
            if handle is None or handle.session.outbound.stream != stream:
                kept[key] = [peer, stream, seq]  # an old stream: its fate stays unknown
            elif seq < handle.session.outbound.next_seq:
                kept[key] = [peer, stream, seq]
        if kept != self.keys:
            self.keys = kept
            self._save()

    def get(self, key: str) -> tuple[str, int, int] | None:
        entry = self.keys.get(key)
        return None if entry is None else (str(entry[0]), int(entry[1]), int(entry[2]))

    def put(self, key: str, peer: str, stream: int, seq: int) -> None:
        self.keys.pop(key, None)
        self.keys[key] = [peer, stream, seq]
        while len(self.keys) > MAX_SEND_IDS:
            del self.keys[next(iter(self.keys))]
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(self.keys, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)


def _entry(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 3
        and isinstance(value[0], str)
        and all(isinstance(v, int) for v in value[1:])
    )


def _timeout(request: Json, default: float = 15.0) -> float:
    timeout = request.get("timeout", default)
    if not isinstance(timeout, int | float) or not 0 <= timeout <= MAX_TIMEOUT:
        raise ConfigError(f"'timeout' is a number of seconds, 0 <= timeout <= {MAX_TIMEOUT:g}")
    return float(timeout)


def _did(request: Json) -> str:
    did = request.get("did")
    if not isinstance(did, str) or not did:
        raise ConfigError("the request needs 'did' (text)")
    return did


async def _outcome(handle: SessionHandle, seq: int, timeout: float) -> Json:
    delivered = handle.session.outbound.acknowledged(seq)
    if not delivered and timeout > 0:
        try:
            await handle.acknowledged(seq, timeout)
            delivered = True
        except SessionTimeout:
            delivered = False
    # A denial notice rides in the packet that acknowledges the request.
    denied = handle.denial(seq)
    return {
        "ok": True,
        "seq": seq,
        "delivered": delivered and denied is None,
        "denied": denied,
        "transport": handle.path,
        "address": handle.address,
    }


async def send(node: Node, ids: SendIds, request: Json) -> Json:
    """Queue one message (establishing the session if needed) and wait up
    to ``timeout`` for the peer's acknowledgement (0: do not wait)."""
    did, address = _did(request), request.get("address")
    if not (address is None or isinstance(address, str)):
        raise ConfigError("send: 'address' is host:port text")
    try:
        data = base64.b64decode(str(request.get("data_b64", "")), validate=True)
    except binascii.Error:
        raise ConfigError("send: 'data_b64' is not base64") from None
    limit = node.config.max_message_size
    if len(data) > limit:
        raise ConfigError(
            f"the message is {len(data):,} bytes; the limit is {limit:,} bytes "
            "(SessionConfig.max_message_size): split it"
        )
    timeout = _timeout(request)
    capability = request.get("capability")
    if capability is not None and not isinstance(capability, str):
        raise ConfigError("send: 'capability' is text: 'ACTION RESOURCE [UNITS]'")
    wanted = None if capability is None else Request.parse(capability)
    if is_foreign(did):
        # A Nostr peer (nostr:npub1...): its federated session, where
        # "delivered" means a relay accepted the event (docs/FEDERATION.md).
        if wanted is not None:
            raise ConfigError("send: --capability is for native sessions, not a foreign peer")
        return await send_federated(node, did, data, timeout or 15.0)
    key = request.get("id")
    if key is not None and (not isinstance(key, str) or not 0 < len(key.encode()) <= MAX_SEND_ID):
        raise ConfigError(f"send: 'id' is text of 1 to {MAX_SEND_ID} bytes")
    started = time.perf_counter()
    if key is not None and (known := ids.get(key)) is not None:
        peer, stream, seq = known
        handle = node.session(peer)
        if peer != did:
            raise ConfigError(f"send: id {key!r} was used for a message to {peer}")
        if handle is None or handle.session.outbound.stream != stream:
            return {"ok": True, "seq": seq, "duplicate": True, "delivered": False, "lost": True}
        return {**await _outcome(handle, seq, timeout), "duplicate": True}
    note = None
    handle = node.session(did)
    if handle is None:
        handle = await node.establish(did, address, timeout=max(0.1, timeout or 15.0))
    elif address is not None and address.startswith("relay://"):
        node.add_relay_route(did, address.removeprefix("relay://"))
    elif (
        address is not None
        and address != handle.address
        and not node.add_peer(did, address)
        and handle.address != address
    ):
        note = (
            f"the session with {did} works at {handle.address}: it stays there; "
            f"{address} is tried as another route and used only once it answers"
        )
    # A session that exists takes the message at once, whatever its state:
    # it is queued (durably, with a store) and goes out when the peer is
    # reachable.
    seq = handle.send_nowait(data, request=wanted)
    if key is not None:
        ids.put(key, did, handle.session.outbound.stream, seq)
    remaining = 0.0 if timeout == 0 else max(0.1, timeout - (time.perf_counter() - started))
    response = await _outcome(handle, seq, remaining)
    if note is not None:
        response["note"] = note
    return response


async def await_ack(node: Node, request: Json) -> Json:
    """Wait until message ``seq`` to ``did`` is acknowledged (batch sends
    queue with timeout 0, then wait for the last one: the stream is in
    order, so its acknowledgement covers the batch)."""
    did, seq = _did(request), request.get("seq")
    if not isinstance(seq, int) or seq < 0:
        raise ConfigError("await: 'seq' is a message number")
    handle = node.session(did)
    if handle is None:
        raise ConfigError(f"there is no session with {did}")
    return await _outcome(handle, seq, _timeout(request))


def peer_set(node: Node, request: Json) -> Json:
    did, address = _did(request), request.get("address")
    if not isinstance(address, str):
        raise ConfigError("peer_set: 'address' is host:port text")
    handle = node.session(did)
    moved = node.add_peer(did, address)
    state = None if handle is None else handle.state.value
    return {"ok": True, "moved": moved, "state": state}


def peer_forget(node: Node, request: Json) -> Json:
    return {"ok": True, "forgotten": node.forget_peer(_did(request))}


def session_close(node: Node, request: Json) -> Json:
    return {"ok": True, "closed": node.close_session(_did(request))}
