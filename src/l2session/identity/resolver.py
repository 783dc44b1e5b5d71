"""From a DID to its document: the resolver interface and its registry.

The session layer never trusts a key a peer merely *claims*; it asks a
resolver for the DID's document and takes the signing key from there.  This
module is the pure, synchronous layer of that: a :class:`DidResolver`
protocol, the offline :class:`KeyDidResolver` (a ``did:key`` *is* its key,
no lookup needed), and a :class:`ResolverRegistry` that routes by method and
enforces what every resolver must guarantee:

* failures come out as :class:`~l2session.errors.L2SessionError` subclasses
  (a resolver's own exception is wrapped in ``DidResolutionError``), and
* the document returned is the document *of the DID asked for*; a resolver
  that answers for another DID is refused rather than believed.

Network methods (``did:web`` and the like) need I/O and will be served by an
async resolver in the runtime layer that wraps this one (fetch the JSON,
then :meth:`DidDocument.from_json` and the same checks); nothing here does
I/O, reads the clock or draws randomness.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from l2session.errors import (
    ConfigError,
    DidResolutionError,
    L2SessionError,
    UnsupportedDidMethod,
)
from l2session.identity.did import Did
from l2session.identity.document import DidDocument, did_key_document


@runtime_checkable
class DidResolver(Protocol):
    """Anything that turns a DID into its document, synchronously.

    Implementations raise :class:`~l2session.errors.DidNotFound` for a DID
    they know the method of but have no document for, and other
    :class:`~l2session.errors.IdentityError` subclasses for other failures.
    """

    def resolve(self, did: Did) -> DidDocument:
        """The document of ``did``."""
        ...


class KeyDidResolver:
    """Offline resolution of Ed25519 ``did:key`` DIDs.

    A did:key encodes its public key, so the document is computed, not
    fetched (:func:`~l2session.identity.document.did_key_document`).  The
    computation validates the key point and every identifier, so documents
    of recently seen DIDs are cached (they are immutable; 4,096 entries).
    """

    def resolve(self, did: Did) -> DidDocument:
        """The did:key document of ``did``; ``UnsupportedDidMethod`` for
        another method, ``InvalidDid``/``UnsupportedKeyType`` for a bad key."""
        if did.method != "key":
            raise UnsupportedDidMethod(f"KeyDidResolver resolves did:key only, not {did}")
        return _cached_did_key_document(did)


@functools.lru_cache(maxsize=4096)
def _cached_did_key_document(did: Did) -> DidDocument:
    return did_key_document(did)


def _parse(did: Did | str) -> Did:
    return did if isinstance(did, Did) else Did.parse(did)


def checked_resolve(resolver: DidResolver, did: Did | str) -> DidDocument:
    """``resolver.resolve(did)`` with the guarantees every caller relies on.

    A string is parsed first (``InvalidDid``).  An exception that is not an
    :class:`~l2session.errors.L2SessionError` (a bug or a library's error in
    the resolver) becomes :class:`~l2session.errors.DidResolutionError`; a
    result that is not a :class:`DidDocument`, or is the document of another
    DID, is refused with ``DidResolutionError`` too.
    """
    parsed = _parse(did)
    try:
        document = resolver.resolve(parsed)
    except L2SessionError:
        raise
    except Exception as exc:
        raise DidResolutionError(
            f"resolver {type(resolver).__name__} failed on {parsed}: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(document, DidDocument):
        raise DidResolutionError(
            f"resolver {type(resolver).__name__} returned {type(document).__name__} for "
            f"{parsed}, not a DidDocument"
        )
    if document.id != parsed:
        raise DidResolutionError(
            f"resolver {type(resolver).__name__} returned the document of {document.id} "
            f"when asked for {parsed}; refusing it"
        )
    return document


class ResolverRegistry:
    """Routes each DID to the resolver registered for its method.

    It is itself a :class:`DidResolver`, so a session is configured with one
    registry and never needs to know which methods exist.
    """

    def __init__(self, resolvers: Mapping[str, DidResolver] | None = None) -> None:
        self._resolvers: dict[str, DidResolver] = {}
        for method, resolver in (resolvers or {}).items():
            self.register(method, resolver)

    @property
    def methods(self) -> tuple[str, ...]:
        """The registered method names, sorted."""
        return tuple(sorted(self._resolvers))

    def register(self, method: str, resolver: DidResolver, *, replace: bool = False) -> None:
        """Serve ``did:<method>:…`` with ``resolver``.

        Registering a method twice is a configuration mistake unless
        ``replace=True`` says it is intended (:class:`ConfigError`).
        """
        try:
            Did(method, "x")
        except L2SessionError:
            raise ConfigError(
                f"{method!r} is not a DID method name (lowercase letters and digits only)"
            ) from None
        if not isinstance(resolver, DidResolver):
            raise ConfigError(f"resolver for did:{method} has no resolve(did) method")
        if method in self._resolvers and not replace:
            raise ConfigError(
                f"a resolver for did:{method} is already registered; pass replace=True to swap it"
            )
        self._resolvers[method] = resolver

    def resolve(self, did: Did | str) -> DidDocument:
        """The document of ``did`` from the resolver of its method.

        Raises :class:`UnsupportedDidMethod` (listing the registered
        methods) when none is registered, and otherwise what
        :func:`checked_resolve` raises.
        """
        parsed = _parse(did)
        resolver = self._resolvers.get(parsed.method)
        if resolver is None:
            known = ", ".join(f"did:{m}" for m in self.methods) or "none"
            raise UnsupportedDidMethod(
                f"no resolver for did:{parsed.method} (needed for {parsed}); "
                f"registered methods: {known}"
            )
        return checked_resolve(resolver, parsed)


def default_resolver() -> ResolverRegistry:
    """A registry with the methods that need no I/O: ``did:key``."""
    return ResolverRegistry({"key": KeyDidResolver()})


def resolve_signing_key(resolver: DidResolver, did: Did | str) -> bytes:
    """The Ed25519 key that signs for ``did``, per its resolved document.

    The one call the handshake makes to learn whose signature to expect.
    Raises what :func:`checked_resolve` and
    :meth:`DidDocument.signing_key` raise.
    """
    return checked_resolve(resolver, did).signing_key()


__all__ = [
    "DidResolver",
    "KeyDidResolver",
    "ResolverRegistry",
    "checked_resolve",
    "default_resolver",
    "resolve_signing_key",
]
