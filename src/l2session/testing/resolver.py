"""A DID resolver for tests (SPEC-018 section 6.3, "MockResolver with test
documents").

Handshake and session tests need peers whose DIDs resolve without a
network, documents that are wrong on purpose, and resolvers that fail on
cue.  :class:`MockResolver` provides that and records every resolution, so
a test can also assert *how often* the code under test resolved (caching,
no resolution on the hot path).

Any ``did:key`` not explicitly added resolves through the real
:class:`~l2session.identity.resolver.KeyDidResolver`, so tests can use real
did:key identities with no setup.  Deterministic: no clock, no randomness.
"""

from __future__ import annotations

from collections.abc import Iterable

from l2session.errors import DidNotFound, L2SessionError
from l2session.identity.did import Did
from l2session.identity.document import (
    DID_CONTEXT_V1,
    MULTIKEY_CONTEXT,
    DidDocument,
    Service,
    VerificationMethod,
)
from l2session.identity.resolver import KeyDidResolver


def _parse(did: Did | str) -> Did:
    return did if isinstance(did, Did) else Did.parse(did)


class MockResolver:
    """In-memory :class:`~l2session.identity.resolver.DidResolver` for tests.

    ``calls`` lists every DID passed to :meth:`resolve`, in order (failed
    resolutions included); ``call_count`` is its length.
    """

    def __init__(self, *, resolve_did_key: bool = True) -> None:
        self._documents: dict[Did, DidDocument] = {}
        self._failures: dict[Did, tuple[L2SessionError, int | None]] = {}
        self._key_resolver = KeyDidResolver() if resolve_did_key else None
        self.calls: list[Did] = []

    @property
    def call_count(self) -> int:
        """How many times :meth:`resolve` was called."""
        return len(self.calls)

    def add(
        self,
        did: Did | str,
        signing_public: bytes,
        agreement_public: bytes | None = None,
        services: Iterable[Service | tuple[str, str]] = (),
    ) -> DidDocument:
        """Store (and return) a simple document for ``did``.

        The Ed25519 key becomes ``#key-1`` (a ``Multikey`` in
        ``authentication`` and ``assertionMethod``); an X25519 key, if
        given, ``#key-2`` in ``keyAgreement``.  Services are
        :class:`Service` values or ``(type, endpoint)`` pairs, which get ids
        ``#service-1``, ``#service-2`` ….  The key is not checked against a
        did:key's own key, so tests can build inconsistent documents.
        """
        parsed = _parse(did)
        signing = VerificationMethod(
            f"{parsed}#key-1", "Multikey", parsed, "Ed25519", bytes(signing_public)
        )
        methods = [signing]
        agreement: tuple[str, ...] = ()
        if agreement_public is not None:
            x25519 = VerificationMethod(
                f"{parsed}#key-2", "Multikey", parsed, "X25519", bytes(agreement_public)
            )
            methods.append(x25519)
            agreement = (x25519.id,)
        built = tuple(
            entry
            if isinstance(entry, Service)
            else Service(f"{parsed}#service-{index}", entry[0], entry[1])
            for index, entry in enumerate(services, start=1)
        )
        document = DidDocument(
            id=parsed,
            verification_methods=tuple(methods),
            authentication=(signing.id,),
            assertion_method=(signing.id,),
            key_agreement=agreement,
            services=built,
            context=(DID_CONTEXT_V1, MULTIKEY_CONTEXT),
        )
        self.add_document(document)
        return document

    def add_document(self, document: DidDocument) -> None:
        """Serve ``document`` for its own ``id`` (replacing any earlier one)."""
        self._documents[document.id] = document

    def remove(self, did: Did | str) -> None:
        """Forget the document of ``did``; ``DidNotFound`` if there was none."""
        parsed = _parse(did)
        if self._documents.pop(parsed, None) is None:
            raise DidNotFound(f"MockResolver has no document for {parsed} to remove")

    def fail_with(self, did: Did | str, error: L2SessionError, *, times: int | None = None) -> None:
        """Make resolving ``did`` raise ``error``: the next ``times``
        resolutions, or every one until :meth:`clear_failure` if ``None``."""
        if not isinstance(error, L2SessionError):
            raise TypeError("fail_with takes an L2SessionError, like a real resolver raises")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1 (or None for always)")
        self._failures[_parse(did)] = (error, times)

    def clear_failure(self, did: Did | str) -> None:
        """Undo :meth:`fail_with` for ``did``."""
        self._failures.pop(_parse(did), None)

    def resolve(self, did: Did) -> DidDocument:
        """The stored document, a did:key document, or the scheduled error;
        :class:`~l2session.errors.DidNotFound` otherwise."""
        parsed = _parse(did)
        self.calls.append(parsed)
        failure = self._failures.get(parsed)
        if failure is not None:
            error, times = failure
            if times is not None:
                if times <= 1:
                    del self._failures[parsed]
                else:
                    self._failures[parsed] = (error, times - 1)
            raise error
        document = self._documents.get(parsed)
        if document is not None:
            return document
        if self._key_resolver is not None and parsed.method == "key":
            return self._key_resolver.resolve(parsed)
        raise DidNotFound(f"MockResolver has no document for {parsed}")


__all__ = ["MockResolver"]
