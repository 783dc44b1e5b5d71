"""``Node.establish`` after the request was checked: find the peer, start
the handshake, wait for it, and say precisely why it failed.

The core runs the handshake; this waits for it the way a user needs:

* no address known: ask the discovery targets, or fail at once saying so;
* QUIC takes ``connect_timeout`` to give up on an address where nothing
  listens, so a μTCP probe goes out in parallel: every path shares the
  port, and a refused TCP connect settles it at once
  (:meth:`PathMonitor.nothing_listens`);
* a node that answers with a refusal on every path (it is at one of its
  limits) ends the wait with PeerRefused and the paths' reasons;
* a session this call created and that never came up is removed again,
  so a failed attempt leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Protocol

from l2session.core.link.session import Session
from l2session.core.management.manager import SessionManager
from l2session.core.states import State
from l2session.errors import PeerRefused, SessionTimeout, TransportFailed
from l2session.runtime.directory import AddressBook
from l2session.runtime.handle import SessionHandle
from l2session.runtime.paths import PathMonitor
from l2session.runtime.sessions import HandleTable
from l2session.transports.base import Transport
from l2session.transports.discovery import DiscoveryEndpoint
from l2session.transports.relay import split as relay_split

_log = logging.getLogger("l2session.node")
#: States a failed session's retry moves it to (:func:`_through_retries`).
_TRYING: Final = (
    State.HANDSHAKE_INITIATED,
    State.HANDSHAKE_RECEIVED,
    State.ESTABLISHED,
    State.ROTATING,
)


class EstablishHost(Protocol):
    """The port :func:`establish` uses (the Node satisfies it): the
    manager, the address book and discovery, the path monitor's failure
    reasons, the transports (for the μTCP probe), the handle table, and the
    pump to kick."""

    @property
    def manager(self) -> SessionManager: ...

    @property
    def directory(self) -> AddressBook: ...

    @property
    def discovery_targets(self) -> Sequence[str]: ...

    @property
    def discovery(self) -> DiscoveryEndpoint | None: ...

    @property
    def paths_seen(self) -> PathMonitor: ...

    @property
    def transports(self) -> Mapping[str, Transport]: ...

    @property
    def handles(self) -> HandleTable: ...

    def kick(self) -> None: ...

    async def discover(self, peer_did: str) -> str | None: ...


async def establish(node: EstablishHost, peer_did: str, timeout: float) -> SessionHandle:
    """See :meth:`Node.establish` (the DID is checked, the address learned)."""
    manager = node.manager
    existing = manager.session(peer_did)
    target = node.directory.address_of(peer_did)
    if existing is None and target is not None:
        node.paths_seen.forget_errors(target)  # reasons from earlier attempts
    if existing is None and node.directory.address_of(peer_did) is None:
        if not (node.discovery is not None and node.discovery_targets):
            raise TransportFailed(
                f"no address is known for {peer_did}: pass one (host:port, CLI --to) "
                "or configure discovery targets"
            )
        if await node.discover(peer_did) is None:
            raise TransportFailed(
                f"no address is known for {peer_did}, and no node answered for it at "
                f"{', '.join(node.discovery_targets)}"
            )
    session = existing or manager.establish(peer_did)
    tcp = node.transports.get("tcp")
    if (
        existing is None
        and tcp is not None
        and session.address is not None
        and relay_split(session.address) is None  # a relayed route: no direct dial
        and all(t.dialable(session.address) for t in node.transports.values())
    ):
        # QUIC is tried first and takes connect_timeout to give up; a
        # μTCP connect refused at once settles that no node listens
        # there (every path shares the port), so ask it in parallel.
        # Never dial an outbound-only peer's ephemeral port.
        tcp.probe(session.address)
    node.kick()
    handle = node.handles.handle(session)

    def nothing_listens() -> str | None:
        if session.established_once or session.address is None:
            return None
        return node.paths_seen.nothing_listens(session.address)

    try:
        await _established_or_refused(node, handle, target, timeout, give_up=nothing_listens)
    except PeerRefused:
        if existing is None and not session.established_once:
            _forget(node, session)
        raise
    except TransportFailed as error:
        if existing is None and not session.established_once:
            _forget(node, session)
        target = node.directory.address_of(peer_did)
        reasons = _unreachable(node, target) if target and nothing_listens() is None else ""
        raise TransportFailed(f"{error}{reasons}") from None
    except SessionTimeout:
        if existing is not None or session.established_once:
            raise
        _forget(node, session)
        target = node.directory.address_of(peer_did)
        raise SessionTimeout(
            f"{peer_did} did not answer at {target} within {timeout:g} s: no node runs "
            "there, or the one there has another DID, or it needs longer (--timeout)"
        ) from None
    except Exception:
        if existing is None and not session.established_once:
            _forget(node, session)
        raise
    return handle


async def _established_or_refused(
    node: EstablishHost,
    handle: SessionHandle,
    target: str | None,
    timeout: float,
    give_up: Callable[[], str | None] | None = None,
) -> None:
    """``handle.established(timeout)``, or PeerRefused as soon as the
    peer's node refused us on every path (it is at a limit: waiting
    for the handshake timeout would only hide why)."""
    if target is None:
        await handle.established(timeout, give_up=give_up)
        return
    paths_seen = node.paths_seen
    refused = paths_seen.refusal(target)

    def settled() -> str | None:
        # path_down wakes the handle after setting the event, so the
        # wait below ends at once (no task to cancel: a cancellation
        # racing the handle's own wake-up could be lost).
        if refused.is_set():
            return "refused"
        return None if give_up is None else give_up()

    try:
        await _through_retries(node, handle, timeout, settled)
    except TransportFailed:
        if not refused.is_set():
            raise
    else:
        return
    finally:
        paths_seen.refusal_done(target)
    reasons = "; ".join(f"{p}: {r}" for p, r in paths_seen.errors_for(target))
    raise PeerRefused(f"the node at {target} refused the connection ({reasons})")


async def _through_retries(
    node: EstablishHost,
    handle: SessionHandle,
    timeout: float,
    give_up: Callable[[], str | None],
) -> None:
    """``handle.established(timeout)``, waiting through a failed attempt
    whose peer sent its signed BUNDLE (``Session.answered_at``): a node
    with that DID is there but did not finish in ``handshake_timeout`` --
    a hub working through a crowd -- so the session's own retry
    (ReconnectionPolicy backoff) is awaited while the caller's ``timeout``
    lasts.  Silence, a refusal or a bad signature fail at once, as before."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    session = handle.session
    while True:
        try:
            await handle.established(max(0.0, deadline - loop.time()), give_up=give_up)
            return
        except TransportFailed:
            retry_at = session.retry_at
            left = deadline - loop.time()
            if (
                session.state is not State.FAILED
                or session.closed
                or session.answered_at is None
                or retry_at is None
                or retry_at - node.manager.now() >= left
                or give_up() is not None
            ):
                raise
        _log.info(
            "session %s: the peer answered but did not finish in time (busy); "
            "waiting for the retry",
            session.peer_did,
        )
        await handle.wait_state(*_TRYING, timeout=max(0.0, deadline - loop.time()))


def _unreachable(node: EstablishHost, address: str) -> str:
    reasons = [f"{p}: {r}" for p, r in node.paths_seen.errors_for(address)]
    if reasons:
        return f" ({address} unreachable: {'; '.join(reasons)})"
    return (
        f" (no l2session node answered at {address}: either none runs there, or the "
        "one there has another DID; check the address and the DID)"
    )


def _forget(node: EstablishHost, session: Session) -> None:
    """Remove a session this attempt created and that never came up."""
    if not session.closed:
        session.close("establishment abandoned")
    node.handles.forget(session)
    node.kick()
