"""DID documents: the keys and endpoints a DID stands for (W3C DID Core).

The session layer needs two things from a peer's DID: the Ed25519 key that
signs its handshakes (``authentication``) and, for document-level key
agreement, X25519 keys (``keyAgreement``).  This module turns the JSON a
resolver returns into frozen values holding exactly that, and checks every
key it keeps: sizes, curve points, encodings.

Documents come from other people's servers, so parsing is defensive:

* Only ``Ed25519`` and ``X25519`` keys are kept, in the common encodings
  (``Ed25519VerificationKey2018``/``2020``, ``X25519KeyAgreementKey2019``/
  ``2020``, ``Multikey``, ``JsonWebKey2020`` with an OKP key).  Methods of
  other types are *skipped*, not refused -- a document may list keys for
  other software -- and recorded in :attr:`DidDocument.ignored_methods` so
  that :meth:`DidDocument.signing_key` can say why nothing was usable.
* A method of a supported type that is malformed (wrong key length, not a
  point, a private key in a JWK, two key encodings at once) makes the whole
  document fail: it is corrupt or hostile, not merely foreign.
* Input is bounded (64 verification methods, 64 services, 64 entries per
  relationship, 2,048 characters per string) and every problem is a
  :class:`~l2session.errors.DidResolutionError` naming the JSON path, such
  as ``verificationMethod[1].publicKeyBase58``.

JSON-LD is not processed: ``@context`` strings are kept (map entries are
dropped).  Relative references are accepted in the ``#fragment`` form only.
Sans-I/O: this module parses objects; fetching them is a resolver's job.

The rules the values and the parser share (key types, bounds, the checks of
strings, DID URLs and keys) are in :mod:`l2session.identity.document_checks`;
every public name of it is importable from here too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from l2session.errors import DidResolutionError, InvalidDid, MalformedMessage
from l2session.identity import base58
from l2session.identity.did import (
    KNOWN_CODECS,
    Did,
    b64url_decode,
    b64url_encode,
    codec_name,
    decode_multibase_key,
    ed25519_from_did_key,
    ed25519_public_to_x25519,
    encode_multibase_key,
    x25519_did_key_fragment,
)
from l2session.identity.document_checks import (
    CODEC_KEY_TYPES,
    DID_CONTEXT_V1,
    ED25519_2018_CONTEXT,
    KEY_TYPE_CODECS,
    MATERIAL_PROPERTIES,
    MAX_BASE58_KEY_LENGTH,
    MAX_CONTEXT_ENTRIES,
    MAX_RELATIONSHIP_ENTRIES,
    MAX_SERVICES,
    MAX_STRING_LENGTH,
    MAX_VERIFICATION_METHODS,
    METHOD_TYPES,
    MULTIKEY_CONTEXT,
    RELATIONSHIPS,
    X25519_2019_CONTEXT,
    KeyType,
    check_did_url,
    check_key,
    check_text,
    fail,
    json_type,
    quoted,
    resolve_ref,
)

# --------------------------------------------------------------------------
# Values


@dataclass(frozen=True, slots=True)
class VerificationMethod:
    """One usable key of a DID document: an Ed25519 or X25519 public key.

    ``id`` is always an absolute DID URL (relative ``#frag`` references are
    resolved when parsing) so that relationships can be matched by text.
    ``type`` is kept so that :meth:`to_json` writes the key in the same
    encoding it was published in.  Construction validates the key (size,
    Ed25519 point) and raises :class:`DidResolutionError`.
    """

    id: str
    type: str
    controller: Did
    key_type: KeyType
    public_key: bytes

    def __post_init__(self) -> None:
        path = f"verification method {self.id!r}" if isinstance(self.id, str) else "id"
        check_did_url(self.id, path)
        if not isinstance(self.controller, Did):
            raise fail(path, f"controller must be a Did, got {type(self.controller).__name__}")
        spec = METHOD_TYPES.get(self.type) if isinstance(self.type, str) else None
        if spec is None:
            raise fail(
                path,
                f"type {self.type!r} is not one l2session can represent "
                f"(supported: {', '.join(sorted(METHOD_TYPES))})",
            )
        if not isinstance(self.key_type, str) or self.key_type not in spec[1]:
            raise fail(path, f"a {self.type} cannot hold an {self.key_type} key")
        if not isinstance(self.public_key, bytes):
            raise fail(path, f"public_key must be bytes, got {type(self.public_key).__name__}")
        check_key(self.key_type, self.public_key, path)

    def to_json(self) -> dict[str, object]:
        """The W3C DID Core JSON of this method, in its own type's encoding."""
        out: dict[str, object] = {
            "id": self.id,
            "type": self.type,
            "controller": str(self.controller),
        }
        prop = METHOD_TYPES[self.type][0]
        if prop == "publicKeyBase58":
            out[prop] = base58.encode(self.public_key)
        elif prop == "publicKeyMultibase":
            out[prop] = encode_multibase_key(KEY_TYPE_CODECS[self.key_type], self.public_key)
        else:
            out[prop] = {"kty": "OKP", "crv": self.key_type, "x": b64url_encode(self.public_key)}
        return out


@dataclass(frozen=True, slots=True)
class IgnoredMethod:
    """A verification method skipped because l2session cannot use it (an
    unknown type or key type).  Kept only to explain failures."""

    id: str
    type: str
    reason: str


@dataclass(frozen=True, slots=True)
class Service:
    """A service endpoint of a DID document (``service`` entry).

    Only string endpoints are represented; services whose ``type`` or
    ``serviceEndpoint`` is a set or map are skipped when parsing, since the
    transports that read endpoints take one URI.
    """

    id: str
    type: str
    endpoint: str

    def __post_init__(self) -> None:
        check_text(self.id, "service.id")
        check_text(self.type, "service.type")
        check_text(self.endpoint, "service.serviceEndpoint")

    def to_json(self) -> dict[str, object]:
        """The W3C DID Core JSON of this service."""
        return {"id": self.id, "type": self.type, "serviceEndpoint": self.endpoint}


@dataclass(frozen=True, slots=True)
class DidDocument:
    """The parts of a DID document that l2session uses, validated.

    Relationships (``authentication`` …) hold absolute method ids; a method
    embedded in a relationship lives in :attr:`embedded_methods` and is
    written back embedded by :meth:`to_json`.  Equality ignores
    :attr:`ignored_methods`, which :meth:`to_json` cannot reproduce.
    """

    id: Did
    verification_methods: tuple[VerificationMethod, ...] = ()
    authentication: tuple[str, ...] = ()
    assertion_method: tuple[str, ...] = ()
    key_agreement: tuple[str, ...] = ()
    capability_invocation: tuple[str, ...] = ()
    capability_delegation: tuple[str, ...] = ()
    services: tuple[Service, ...] = ()
    context: tuple[str, ...] = (DID_CONTEXT_V1,)
    embedded_methods: tuple[VerificationMethod, ...] = ()
    ignored_methods: tuple[IgnoredMethod, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, Did):
            raise fail("id", f"must be a Did, got {type(self.id).__name__}")
        methods = self.verification_methods + self.embedded_methods + self.ignored_methods
        services = self.services
        for name, items, limit in (
            ("verificationMethod", methods, MAX_VERIFICATION_METHODS),
            ("service", services, MAX_SERVICES),
        ):
            if len(items) > limit:
                raise fail(name, f"{len(items)} entries; the limit is {limit}")
            ids = [item.id for item in items]
            if len(set(ids)) != len(ids):
                duplicate = next(i for i in ids if ids.count(i) > 1)
                raise fail(name, f"duplicate id {quoted(duplicate)}")
        for json_name, attribute in RELATIONSHIPS:
            refs: tuple[str, ...] = getattr(self, attribute)
            if len(refs) > MAX_RELATIONSHIP_ENTRIES:
                raise fail(json_name, f"more than {MAX_RELATIONSHIP_ENTRIES} entries")
            for index, ref in enumerate(refs):
                check_did_url(ref, f"{json_name}[{index}]")

    def method(self, ref: str) -> VerificationMethod | None:
        """The usable method ``ref`` names (absolute id or ``#fragment``)."""
        absolute = f"{self.id}{ref}" if ref.startswith("#") else ref
        for candidate in self.verification_methods + self.embedded_methods:
            if candidate.id == absolute:
                return candidate
        return None

    def signing_method(self) -> VerificationMethod:
        """The first method referenced by ``authentication`` that holds an
        Ed25519 key: the key a peer's handshake signatures must verify with.

        Raises :class:`DidResolutionError` explaining each reference that did
        not qualify when there is none.
        """
        reasons: list[str] = []
        ignored = {m.id: m for m in self.ignored_methods}
        for ref in self.authentication:
            found = self.method(ref)
            if found is not None and found.key_type == "Ed25519":
                return found
            if found is not None:
                reasons.append(f"{ref} is an {found.key_type} key")
            elif ref in ignored:
                reasons.append(f"{ref} was skipped: {ignored[ref].reason}")
            else:
                reasons.append(f"{ref} is not a verification method of this document")
        if not reasons:
            raise DidResolutionError(
                f"DID document of {self.id} lists no authentication method, so it names no "
                "signing key"
            )
        raise DidResolutionError(
            f"DID document of {self.id} has no usable Ed25519 authentication key: "
            + "; ".join(reasons)
        )

    def signing_key(self) -> bytes:
        """The 32-byte Ed25519 public key of :meth:`signing_method`."""
        return self.signing_method().public_key

    def agreement_keys(self) -> tuple[bytes, ...]:
        """The X25519 keys referenced by ``keyAgreement``, in document order
        (references to unusable or absent methods are skipped)."""
        keys: list[bytes] = []
        for ref in self.key_agreement:
            found = self.method(ref)
            if found is not None and found.key_type == "X25519":
                keys.append(found.public_key)
        return tuple(keys)

    @classmethod
    def from_json(cls, obj: object) -> DidDocument:
        """Parse a DID document from its JSON value (``json.loads`` output).

        See the module docstring for what is kept, skipped and refused.
        Raises only :class:`DidResolutionError`, whose message names the
        JSON path of the problem.
        """
        return _Parser.document(obj)

    def to_json(self) -> dict[str, object]:
        """The W3C DID Core JSON of this document (absolute ids throughout)."""
        out: dict[str, object] = {}
        if self.context:
            out["@context"] = list(self.context)
        out["id"] = str(self.id)
        if self.verification_methods:
            out["verificationMethod"] = [m.to_json() for m in self.verification_methods]
        embedded = {m.id: m for m in self.embedded_methods}
        for json_name, attribute in RELATIONSHIPS:
            refs: tuple[str, ...] = getattr(self, attribute)
            if refs:
                out[json_name] = [
                    embedded[ref].to_json() if ref in embedded else ref for ref in refs
                ]
        if self.services:
            out["service"] = [s.to_json() for s in self.services]
        return out


# --------------------------------------------------------------------------
# JSON parsing


class _Parser:
    """One parse of one document: carries the document's DID and the method
    ids seen so far (for relative references and duplicate detection)."""

    def __init__(self, base: Did) -> None:
        self.base = base
        self.count = 0
        self.ids: set[str] = set()
        self.ignored: list[IgnoredMethod] = []

    @classmethod
    def document(cls, obj: object) -> DidDocument:
        if not isinstance(obj, dict):
            raise DidResolutionError(f"a DID document must be a JSON object, got {json_type(obj)}")
        if "id" not in obj:
            raise fail("id", "missing (a DID document must state its DID)")
        try:
            base = Did.parse(check_text(obj["id"], "id"))
        except InvalidDid as exc:
            raise fail("id", str(exc)) from None
        return cls(base).parse(obj)

    def parse(self, obj: dict[object, object]) -> DidDocument:
        methods = tuple(
            m
            for i, raw in enumerate(
                self._array(obj, "verificationMethod", MAX_VERIFICATION_METHODS)
            )
            if (m := self.method(raw, f"verificationMethod[{i}]")) is not None
        )
        relationships: dict[str, tuple[str, ...]] = {}
        embedded: list[VerificationMethod] = []
        for json_name, attribute in RELATIONSHIPS:
            refs: list[str] = []
            for i, raw in enumerate(self._array(obj, json_name, MAX_RELATIONSHIP_ENTRIES)):
                path = f"{json_name}[{i}]"
                if isinstance(raw, dict):
                    found = self.method(raw, path)
                    if found is not None:
                        embedded.append(found)
                        refs.append(found.id)
                    else:
                        refs.append(self.ignored[-1].id)
                else:
                    refs.append(resolve_ref(raw, path, self.base))
            relationships[attribute] = tuple(refs)
        return DidDocument(
            id=self.base,
            verification_methods=methods,
            services=self.services(obj),
            context=self.context(obj),
            embedded_methods=tuple(embedded),
            ignored_methods=tuple(self.ignored),
            **relationships,
        )

    @staticmethod
    def _array(obj: dict[object, object], name: str, limit: int) -> list[object]:
        value = obj.get(name)
        if value is None:
            return []
        if not isinstance(value, list):
            raise fail(name, f"must be an array, got {json_type(value)}")
        if len(value) > limit:
            raise fail(name, f"has {len(value)} entries; the limit is {limit}")
        return value

    def context(self, obj: dict[object, object]) -> tuple[str, ...]:
        raw = obj.get("@context")
        if raw is None:
            return ()
        entries = [raw] if isinstance(raw, str) else raw
        if not isinstance(entries, list):
            raise fail("@context", f"must be a string or an array, got {json_type(raw)}")
        if len(entries) > MAX_CONTEXT_ENTRIES:
            raise fail(
                "@context", f"has {len(entries)} entries; the limit is {MAX_CONTEXT_ENTRIES}"
            )
        kept: list[str] = []
        for i, entry in enumerate(entries):
            if isinstance(entry, dict):
                continue  # JSON-LD term definitions: not processed, see module docstring
            kept.append(
                check_text(entry, f"@context[{i}]" if isinstance(raw, list) else "@context")
            )
        return tuple(kept)

    def method(self, raw: object, path: str) -> VerificationMethod | None:
        """Parse one method; ``None`` (and a record in ``ignored``) if skipped."""
        if not isinstance(raw, dict):
            raise fail(path, f"a verification method must be an object, got {json_type(raw)}")
        self.count += 1
        if self.count > MAX_VERIFICATION_METHODS:
            raise fail(path, f"more than {MAX_VERIFICATION_METHODS} verification methods")
        method_id = resolve_ref(raw.get("id"), f"{path}.id", self.base)
        if method_id in self.ids:
            raise fail(f"{path}.id", f"duplicate verification method id {quoted(method_id)}")
        self.ids.add(method_id)
        method_type = check_text(raw.get("type"), f"{path}.type")
        controller_text = check_text(raw.get("controller"), f"{path}.controller")
        try:
            controller = Did.parse(controller_text)
        except InvalidDid as exc:
            raise fail(f"{path}.controller", str(exc)) from None
        spec = METHOD_TYPES.get(method_type)
        if spec is None:
            return self._ignore(
                method_id, method_type, f"type {quoted(method_type)} is not supported"
            )
        prop, allowed = spec
        present = [p for p in MATERIAL_PROPERTIES if p in raw]
        if len(present) > 1:
            raise fail(
                path,
                f"has both {present[0]} and {present[1]}; a verification method carries "
                "exactly one encoding of its key",
            )
        if prop not in raw:
            other = f" (found {present[0]} instead)" if present else ""
            raise fail(f"{path}.{prop}", f"missing: a {method_type} carries its key there{other}")
        key_path = f"{path}.{prop}"
        if prop == "publicKeyBase58":
            text = check_text(raw[prop], key_path)
            if len(text) > MAX_BASE58_KEY_LENGTH:
                raise fail(key_path, f"is {len(text)} characters; a 32-byte key is at most 44")
            try:
                key = base58.decode(text)
            except MalformedMessage as exc:
                raise fail(key_path, str(exc)) from None
            (key_type,) = allowed
        elif prop == "publicKeyMultibase":
            try:
                codec, key = decode_multibase_key(check_text(raw[prop], key_path))
            except MalformedMessage as exc:
                raise fail(key_path, str(exc)) from None
            if KNOWN_CODECS.get(codec, "").endswith("-priv"):
                raise fail(
                    key_path, f"holds a private key ({codec_name(codec)}); never publish one"
                )
            found_type = CODEC_KEY_TYPES.get(codec)
            if found_type is None and method_type == "Multikey":
                return self._ignore(
                    method_id, method_type, f"key type {codec_name(codec)} is not supported"
                )
            if found_type is None or found_type not in allowed:
                wanted = " or ".join(codec_name(KEY_TYPE_CODECS[t]) for t in sorted(allowed))
                raise fail(key_path, f"a {method_type} must hold {wanted}, got {codec_name(codec)}")
            key_type = found_type
        else:
            jwk = self._jwk(raw[prop], key_path)
            if isinstance(jwk, str):
                return self._ignore(method_id, method_type, jwk)
            key_type, key = jwk
        check_key(key_type, key, key_path)
        return VerificationMethod(method_id, method_type, controller, key_type, key)

    def _ignore(self, method_id: str, method_type: str, reason: str) -> VerificationMethod | None:
        """Record a skipped method; returns ``None`` for ``method`` to return."""
        self.ignored.append(IgnoredMethod(method_id, method_type, reason))
        return None

    @staticmethod
    def _jwk(raw: object, path: str) -> tuple[KeyType, bytes] | str:
        """``(key type, key)`` of an OKP Ed25519/X25519 JWK, the reason to
        skip it for another key type; a private key (``d``) is refused."""
        if not isinstance(raw, dict):
            raise fail(path, f"must be an object, got {json_type(raw)}")
        if "d" in raw:
            raise fail(path, "contains a private key ('d'); a DID document must never publish one")
        kty = check_text(raw.get("kty"), f"{path}.kty")
        crv = raw.get("crv")
        if kty != "OKP" or crv not in ("Ed25519", "X25519"):
            shown = quoted(crv) if isinstance(crv, str) else json_type(crv)
            return f"JWK kty={quoted(kty)} crv={shown} is not supported"
        key_type: KeyType = "Ed25519" if crv == "Ed25519" else "X25519"
        x = check_text(raw.get("x"), f"{path}.x")
        try:
            return key_type, b64url_decode(x)
        except MalformedMessage as exc:
            raise fail(f"{path}.x", str(exc)) from None

    def services(self, obj: dict[object, object]) -> tuple[Service, ...]:
        services: list[Service] = []
        for i, raw in enumerate(self._array(obj, "service", MAX_SERVICES)):
            path = f"service[{i}]"
            if not isinstance(raw, dict):
                raise fail(path, f"a service must be an object, got {json_type(raw)}")
            service_id = check_text(raw.get("id"), f"{path}.id")
            if service_id.startswith("#"):
                service_id = resolve_ref(service_id, f"{path}.id", self.base)
            kind, endpoint = raw.get("type"), raw.get("serviceEndpoint")
            if isinstance(kind, list | dict) or isinstance(endpoint, list | dict):
                continue  # sets and maps are valid DID Core but not representable here
            services.append(
                Service(
                    service_id,
                    check_text(kind, f"{path}.type"),
                    check_text(endpoint, f"{path}.serviceEndpoint"),
                )
            )
        return tuple(services)


# --------------------------------------------------------------------------
# did:key


def did_key_document(did: Did | str) -> DidDocument:
    """The DID document the did:key method defines for an Ed25519 did:key.

    Exactly the published form (W3C CCG did:key, test vectors
    ``ed25519-x25519.json``): an ``Ed25519VerificationKey2018`` with id
    ``<did>#<method-id>`` for authentication, assertion and capabilities, and
    an ``X25519KeyAgreementKey2019`` derived with the RFC 7748 map for
    ``keyAgreement``.  Raises :class:`~l2session.errors.InvalidDid` or
    :class:`~l2session.errors.UnsupportedKeyType` for a bad did:key.
    """
    parsed = did if isinstance(did, Did) else Did.parse(did)
    public = ed25519_from_did_key(parsed)
    x25519 = ed25519_public_to_x25519(public)
    signing = VerificationMethod(
        f"{parsed}#{parsed.method_id}", "Ed25519VerificationKey2018", parsed, "Ed25519", public
    )
    agreement = VerificationMethod(
        f"{parsed}#{x25519_did_key_fragment(x25519)}",
        "X25519KeyAgreementKey2019",
        parsed,
        "X25519",
        x25519,
    )
    return DidDocument(
        id=parsed,
        verification_methods=(signing, agreement),
        authentication=(signing.id,),
        assertion_method=(signing.id,),
        capability_invocation=(signing.id,),
        capability_delegation=(signing.id,),
        key_agreement=(agreement.id,),
        context=(DID_CONTEXT_V1, ED25519_2018_CONTEXT, X25519_2019_CONTEXT),
    )


__all__ = [
    "DID_CONTEXT_V1",
    "ED25519_2018_CONTEXT",
    "MAX_CONTEXT_ENTRIES",
    "MAX_RELATIONSHIP_ENTRIES",
    "MAX_SERVICES",
    "MAX_STRING_LENGTH",
    "MAX_VERIFICATION_METHODS",
    "MULTIKEY_CONTEXT",
    "X25519_2019_CONTEXT",
    "DidDocument",
    "IgnoredMethod",
    "KeyType",
    "Service",
    "VerificationMethod",
    "did_key_document",
]
